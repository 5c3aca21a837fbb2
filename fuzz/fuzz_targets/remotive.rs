//! Feeds arbitrary bytes to the remotive parser: it may refuse them, never panic or hang.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = jobmatch_workers::fetch::parse_listing("remotive", data);
});
