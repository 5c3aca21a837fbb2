//! The working languages a subscription can name, and the words postings use for them.
//!
//! A language is its ISO 639-1 code (what `criteria.languages` lists), its ISO 639-3
//! code (what language detection answers) and its names as postings write them, in
//! English, in the language itself and in German, French and Spanish (lower case):
//! "fluent German", "verhandlungssicheres Deutsch", "allemand courant".

pub struct Language {
    /// ISO 639-1.
    pub code: &'static str,
    /// ISO 639-3.
    pub iso3: &'static str,
    pub names: &'static [&'static str],
}

pub const LANGUAGES: &[Language] = &[
    Language {
        code: "en",
        iso3: "eng",
        names: &["english", "englisch", "anglais", "inglés", "ingles"],
    },
    Language {
        code: "de",
        iso3: "deu",
        names: &["german", "deutsch", "allemand", "alemán", "aleman"],
    },
    Language {
        code: "fr",
        iso3: "fra",
        names: &[
            "french",
            "français",
            "francais",
            "französisch",
            "franzosisch",
            "francés",
            "frances",
        ],
    },
    Language {
        code: "es",
        iso3: "spa",
        names: &[
            "spanish",
            "español",
            "espanol",
            "castellano",
            "spanisch",
            "espagnol",
        ],
    },
    Language {
        code: "it",
        iso3: "ita",
        names: &["italian", "italiano", "italienisch", "italien"],
    },
    Language {
        code: "pt",
        iso3: "por",
        names: &[
            "portuguese",
            "português",
            "portugues",
            "portugiesisch",
            "portugais",
            "portugués",
        ],
    },
    Language {
        code: "nl",
        iso3: "nld",
        names: &[
            "dutch",
            "nederlands",
            "niederländisch",
            "néerlandais",
            "neerlandés",
        ],
    },
    Language {
        code: "pl",
        iso3: "pol",
        names: &["polish", "polski", "polnisch", "polonais", "polaco"],
    },
    Language {
        code: "sv",
        iso3: "swe",
        names: &["swedish", "svenska", "schwedisch", "suédois", "sueco"],
    },
    Language {
        code: "da",
        iso3: "dan",
        names: &["danish", "dansk", "dänisch", "danois", "danés"],
    },
    // Bokmål's code, not the macrolanguage's `no`: Kubernetes reads a bare `no` in YAML
    // as false.
    Language {
        code: "nb",
        iso3: "nob",
        names: &["norwegian", "norsk", "norwegisch", "norvégien", "noruego"],
    },
    Language {
        code: "fi",
        iso3: "fin",
        names: &["finnish", "suomi", "finnisch", "finnois", "finlandés"],
    },
    Language {
        code: "cs",
        iso3: "ces",
        names: &["czech", "čeština", "tschechisch", "tchèque", "checo"],
    },
    Language {
        code: "ja",
        iso3: "jpn",
        names: &["japanese", "japanisch", "japonais", "japonés"],
    },
    Language {
        code: "zh",
        iso3: "cmn",
        names: &["chinese", "mandarin", "chinesisch", "chinois", "chino"],
    },
];

/// The language an ISO 639-1 code names.
pub fn by_code(code: &str) -> Option<&'static Language> {
    LANGUAGES.iter().find(|l| l.code == code)
}

/// The language an ISO 639-3 code names.
pub fn by_iso3(iso3: &str) -> Option<&'static Language> {
    LANGUAGES.iter().find(|l| l.iso3 == iso3)
}

/// The language a lower-case word names (`deutsch`, `french`).
pub fn by_name(word: &str) -> Option<&'static Language> {
    LANGUAGES.iter().find(|l| l.names.contains(&word))
}

/// The codes, for error messages.
pub fn codes() -> String {
    LANGUAGES
        .iter()
        .map(|l| l.code)
        .collect::<Vec<_>>()
        .join(", ")
}
