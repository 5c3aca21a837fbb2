//! Feeds arbitrary bytes to the greenhouse parser: it may refuse them, never panic or hang.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = jobmatch_workers::fetch::parse_listing("greenhouse", data);
});
