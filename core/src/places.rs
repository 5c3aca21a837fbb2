//! Places as postings and people write them: one name for each place whatever its
//! spelling (München and Munich, NYC and New York, UK and United Kingdom), and the
//! regions a remote posting can be restricted to, with which contains which.

/// Names of one place, its canonical name first (all lower case).
const ALIASES: &[&[&str]] = &[
    &["munich", "münchen", "muenchen"],
    &["cologne", "köln", "koeln"],
    &["nuremberg", "nürnberg", "nuernberg"],
    &["frankfurt", "frankfurt am main", "frankfurt a.m."],
    &["vienna", "wien"],
    &["zurich", "zürich", "zuerich"],
    &["geneva", "genève", "geneve", "genf"],
    &["lisbon", "lisboa"],
    &["prague", "praha", "prag"],
    &["warsaw", "warszawa", "warschau"],
    &["rome", "roma", "rom"],
    &["milan", "milano", "mailand"],
    &["turin", "torino"],
    &["florence", "firenze"],
    &["naples", "napoli"],
    &["brussels", "bruxelles", "brussel", "brüssel"],
    &["antwerp", "antwerpen", "anvers"],
    &["the hague", "den haag", "'s-gravenhage"],
    &["copenhagen", "københavn", "kobenhavn", "kopenhagen"],
    &["gothenburg", "göteborg", "goteborg"],
    &["seville", "sevilla"],
    &["athens", "athina", "athen"],
    &["bucharest", "bucurești", "bucuresti", "bukarest"],
    &["krakow", "kraków", "cracow", "krakau"],
    &["new york", "new york city", "nyc", "new york, ny", "ny"],
    &["san francisco", "sf", "san francisco bay area", "bay area"],
    &["washington, dc", "washington dc", "washington d.c.", "dc"],
    &["montreal", "montréal"],
    &["são paulo", "sao paulo"],
    &["mexico city", "ciudad de méxico", "cdmx"],
    &["bangalore", "bengaluru"],
    &["mumbai", "bombay"],
    &[
        "uk",
        "united kingdom",
        "great britain",
        "britain",
        "gb",
        "u.k.",
    ],
    &[
        "us",
        "usa",
        "united states",
        "united states of america",
        "u.s.",
        "u.s.a.",
    ],
    &["germany", "deutschland"],
    &["spain", "españa", "espana"],
    &["switzerland", "schweiz", "suisse", "svizzera"],
    &["austria", "österreich", "osterreich"],
    &["netherlands", "the netherlands", "nederland", "holland"],
    &["italy", "italia", "italien"],
    &["france", "frankreich"],
    &["poland", "polska", "polen"],
    &["czechia", "czech republic", "česko", "tschechien"],
    &["belgium", "belgique", "belgië", "belgien"],
    &["sweden", "sverige", "schweden"],
    &["denmark", "danmark", "dänemark"],
    &["norway", "norge", "norwegen"],
    &["finland", "suomi", "finnland"],
    &["ireland", "éire", "irland"],
    &["portugal"],
    &["mexico", "méxico"],
    &["brazil", "brasil", "brasilien"],
];

/// The one name of a place, lower case: `"München"` → `munich`, `" NYC "` → `new york`;
/// a name not known here is kept (trimmed, lower case, inner spaces folded).
pub fn canonical(name: &str) -> String {
    let lower = name
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    ALIASES
        .iter()
        .find(|names| names.contains(&lower.as_str()))
        .map_or(lower, |names| names[0].to_owned())
}

/// A region a remote posting can be restricted to: its code, the regions that contain
/// it, and the names postings use for it.
pub struct Region {
    pub code: &'static str,
    pub within: &'static [&'static str],
    pub names: &'static [&'static str],
}

const EUROPE: &[&str] = &["europe", "emea"];
const NORTH_AMERICA: &[&str] = &["north-america", "americas"];
const LATAM: &[&str] = &["latam", "americas"];
const APAC: &[&str] = &["apac"];

pub const REGIONS: &[Region] = &[
    Region {
        code: "emea",
        within: &[],
        names: &["emea"],
    },
    Region {
        code: "europe",
        within: &["emea"],
        names: &["europe", "eu", "eea", "european union", "european"],
    },
    Region {
        code: "americas",
        within: &[],
        names: &["americas"],
    },
    Region {
        code: "north-america",
        within: &["americas"],
        names: &["north america", "north-america"],
    },
    Region {
        code: "latam",
        within: &["americas"],
        names: &["latam", "latin america", "south america"],
    },
    Region {
        code: "apac",
        within: &[],
        names: &["apac", "asia pacific", "asia-pacific", "asia"],
    },
    Region {
        code: "uk",
        within: EUROPE,
        names: &[
            "uk",
            "united kingdom",
            "great britain",
            "britain",
            "england",
            "scotland",
        ],
    },
    Region {
        code: "ie",
        within: EUROPE,
        names: &["ireland"],
    },
    Region {
        code: "de",
        within: EUROPE,
        names: &["germany", "deutschland"],
    },
    Region {
        code: "fr",
        within: EUROPE,
        names: &["france"],
    },
    Region {
        code: "es",
        within: EUROPE,
        names: &["spain", "españa"],
    },
    Region {
        code: "pt",
        within: EUROPE,
        names: &["portugal"],
    },
    Region {
        code: "it",
        within: EUROPE,
        names: &["italy"],
    },
    Region {
        code: "nl",
        within: EUROPE,
        names: &["netherlands", "the netherlands", "holland"],
    },
    Region {
        code: "be",
        within: EUROPE,
        names: &["belgium"],
    },
    Region {
        code: "ch",
        within: EUROPE,
        names: &["switzerland"],
    },
    Region {
        code: "at",
        within: EUROPE,
        names: &["austria"],
    },
    Region {
        code: "pl",
        within: EUROPE,
        names: &["poland"],
    },
    Region {
        code: "cz",
        within: EUROPE,
        names: &["czechia", "czech republic"],
    },
    Region {
        code: "se",
        within: EUROPE,
        names: &["sweden"],
    },
    Region {
        code: "dk",
        within: EUROPE,
        names: &["denmark"],
    },
    // Not `no`: Kubernetes reads a bare `no` in YAML as false.
    Region {
        code: "norway",
        within: EUROPE,
        names: &["norway"],
    },
    Region {
        code: "fi",
        within: EUROPE,
        names: &["finland"],
    },
    Region {
        code: "us",
        within: NORTH_AMERICA,
        names: &["us", "usa", "united states", "u.s.", "u.s.a."],
    },
    Region {
        code: "ca",
        within: NORTH_AMERICA,
        names: &["canada"],
    },
    Region {
        code: "mx",
        within: LATAM,
        names: &["mexico", "méxico"],
    },
    Region {
        code: "br",
        within: LATAM,
        names: &["brazil", "brasil"],
    },
    Region {
        code: "in",
        within: APAC,
        names: &["india"],
    },
    Region {
        code: "au",
        within: APAC,
        names: &["australia"],
    },
    Region {
        code: "sg",
        within: APAC,
        names: &["singapore"],
    },
    Region {
        code: "jp",
        within: APAC,
        names: &["japan"],
    },
];

/// The region a code names.
pub fn region(code: &str) -> Option<&'static Region> {
    REGIONS.iter().find(|r| r.code == code)
}

/// Whether two regions share ground: the same, or one within the other (`uk` and
/// `europe` overlap; `uk` and `de` do not).
pub fn overlap(a: &str, b: &str) -> bool {
    let within =
        |inner: &str, outer: &str| region(inner).is_some_and(|r| r.within.contains(&outer));
    a == b || within(a, b) || within(b, a)
}

/// Every region code overlapping one of `codes`.
pub fn overlapping<'a>(codes: impl IntoIterator<Item = &'a str>) -> Vec<&'static str> {
    let codes: Vec<&str> = codes.into_iter().collect();
    REGIONS
        .iter()
        .map(|r| r.code)
        .filter(|r| codes.iter().any(|c| overlap(r, c)))
        .collect()
}

/// Words that make a remote posting open to anyone, wherever it also names a place.
const ANYWHERE: &[&str] = &["anywhere", "worldwide", "global", "globally"];

/// The regions a remote posting's location texts restrict it to (`"Remote (UK only)"` →
/// `uk`; `"Remote - US or Canada"` → `us`, `ca`); empty when it names none, or says
/// anywhere. Names are matched as whole words, lower case.
pub fn remote_regions(locations: &[String]) -> Vec<&'static str> {
    let mut found = Vec::new();
    for location in locations {
        let lower = location.to_lowercase();
        let words: Vec<&str> = lower
            .split(|c: char| !(c.is_alphanumeric() || c == '.' || c == '-'))
            .map(|w| w.trim_matches(['.', '-']))
            .filter(|w| !w.is_empty())
            .collect();
        if words.iter().any(|w| ANYWHERE.contains(w)) {
            return Vec::new();
        }
        let has_phrase = |name: &str| {
            let parts: Vec<&str> = name.split([' ', '-']).collect();
            words.contains(&name)
                || words.windows(parts.len()).any(|w| w == parts.as_slice())
                || (name.contains('.') && lower.contains(name))
        };
        for r in REGIONS {
            if !found.contains(&r.code) && r.names.iter().any(|n| has_phrase(n)) {
                found.push(r.code);
            }
        }
    }
    found
}

/// The region codes, for error messages.
pub fn region_codes() -> String {
    REGIONS
        .iter()
        .map(|r| r.code)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_matched_whatever_their_spelling() {
        assert_eq!(canonical("München"), "munich");
        assert_eq!(canonical(" NYC "), "new york");
        assert_eq!(canonical("United  Kingdom"), "uk");
        assert_eq!(canonical("Leeds"), "leeds");
    }

    #[test]
    fn remote_postings_read_their_regions() {
        let of = |l: &str| remote_regions(&[l.to_owned()]);
        assert_eq!(of("Remote (UK only)"), ["uk"]);
        assert_eq!(of("Remote - US or Canada"), ["us", "ca"]);
        assert_eq!(of("Remote, Europe"), ["europe"]);
        assert_eq!(of("Remote EMEA"), ["emea"]);
        assert_eq!(of("Remote"), Vec::<&str>::new());
        assert_eq!(of("Remote (anywhere, US hours)"), Vec::<&str>::new());
        assert_eq!(of("Remote - North America"), ["north-america"]);
        // "us" inside another word is no region.
        assert_eq!(of("Remote, campus-based"), Vec::<&str>::new());
    }

    #[test]
    fn no_code_is_a_word_yaml_reads_as_a_boolean() {
        let booleans = ["y", "n", "yes", "no", "on", "off", "true", "false"];
        for code in REGIONS
            .iter()
            .map(|r| r.code)
            .chain(crate::languages::LANGUAGES.iter().map(|l| l.code))
        {
            assert!(!booleans.contains(&code), "{code}");
        }
    }

    #[test]
    fn regions_overlap_when_one_holds_the_other() {
        assert!(overlap("uk", "europe"));
        assert!(overlap("europe", "uk"));
        assert!(overlap("uk", "emea"));
        assert!(!overlap("uk", "de"));
        assert!(!overlap("us", "europe"));
        assert!(overlap("us", "americas"));
        assert_eq!(overlapping(["fr"]), ["emea", "europe", "fr"]);
        for r in REGIONS {
            for outer in r.within {
                assert!(region(outer).is_some(), "{} within unknown {outer}", r.code);
            }
        }
    }
}
