//! What a posting says about itself beyond its fields, read once per posting: the
//! language it is written in, the languages it requires, its level and employment type
//! in the criteria's words, the regions a remote posting is restricted to, and its
//! salary per year. [`super::criteria`] decides on these; the job's point stores them
//! as keywords (so a backfill filters on them and reads them back instead of reading
//! the text again).

use jobmatch_core::{EmploymentType, Posting, SalaryPeriod, Seniority, Workplace, languages};

use crate::fetch::normalize;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PostingFacts {
    /// ISO 639-1 where jobmatch knows the language (`languages::LANGUAGES`), else the
    /// detector's ISO 639-3 code; `None` when the text is too short or mixed to tell.
    pub language: Option<String>,
    /// ISO 639-1 codes of languages the text asks for ("fluent German required").
    pub required_languages: Vec<String>,
    pub seniority: Option<Seniority>,
    pub employment_type: Option<EmploymentType>,
    /// A remote posting's regions (`uk`, `europe`, …); empty when it is open to anyone
    /// or is not remote.
    pub remote_regions: Vec<String>,
}

/// Text read for language detection: enough to tell, and bounded in cost.
const DETECTED_CHARS: usize = 2000;

impl PostingFacts {
    pub fn of(posting: &Posting) -> Self {
        let text = format!("{}\n{}", posting.title, posting.description);
        let sample: String = text.chars().take(DETECTED_CHARS).collect();
        let language = whatlang::detect(&sample)
            .filter(whatlang::Info::is_reliable)
            .map(|info| {
                let iso3 = info.lang().code();
                languages::by_iso3(iso3).map_or(iso3, |l| l.code).to_owned()
            });
        let remote_regions = if posting.workplace == Workplace::Remote {
            jobmatch_core::places::remote_regions(&posting.locations)
                .into_iter()
                .map(str::to_owned)
                .collect()
        } else {
            Vec::new()
        };
        Self {
            language,
            required_languages: required_languages(&text.to_lowercase()),
            seniority: posting
                .seniority
                .as_deref()
                .and_then(Seniority::from_word)
                .or_else(|| {
                    normalize::seniority(&posting.title)
                        .as_deref()
                        .and_then(Seniority::from_word)
                }),
            employment_type: posting
                .employment_type
                .as_deref()
                .and_then(normalize::employment_type)
                .as_deref()
                .and_then(EmploymentType::from_word),
            remote_regions,
        }
    }
}

/// The posting's highest stated pay per year in its currency (upper case): the top of
/// its range, else its only figure. `None` without an amount or a currency.
pub fn yearly_salary(posting: &Posting) -> Option<(f64, String)> {
    let salary = posting.salary.as_ref()?;
    let top = salary.max.or(salary.min)?;
    let currency = salary.currency.as_deref()?.trim().to_uppercase();
    let period = salary
        .interval
        .as_deref()
        .and_then(SalaryPeriod::from_word)
        .unwrap_or(if top >= 1000.0 {
            SalaryPeriod::Year
        } else {
            SalaryPeriod::Hour
        });
    (top.is_finite() && !currency.is_empty()).then(|| (top * period.per_year(), currency))
}

/// Words that make a sentence's languages a requirement.
const REQUIRED: &[&str] = &[
    "fluent",
    "fluency",
    "native",
    "mother tongue",
    "required",
    "requirement",
    "mandatory",
    "must",
    "essential",
    "business level",
    "business-level",
    "professional working proficiency",
    "c1",
    "c2",
    "verhandlungssicher",
    "fließend",
    "fliessend",
    "sehr gute",
    "muttersprache",
    "erforderlich",
    "voraussetzung",
    "zwingend",
    "courant",
    "exigé",
    "obligatoire",
    "indispensable",
    "requis",
    "maîtrise",
    "imprescindible",
    "requerido",
    "nativo",
    "fluido",
    "obligatorio",
];

/// Words that make them a wish instead, whatever else the sentence says.
const OPTIONAL: &[&str] = &[
    "a plus",
    "nice to have",
    "nice-to-have",
    "advantage",
    "bonus",
    "preferred",
    "ideally",
    "von vorteil",
    "wünschenswert",
    "un atout",
    "un plus",
    "se valora",
    "valorable",
    "deseable",
];

/// The languages `lower` (a posting's text, lower case) requires, sentence by sentence:
/// a sentence naming a language with a word of requirement (fluent, required, C1,
/// verhandlungssicher, courant, imprescindible, …) and no word of wish (a plus, von
/// Vorteil, un atout, …). German compounds count (`Deutschkenntnisse`).
pub fn required_languages(lower: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for sentence in lower.split(['.', '!', '?', '\n', ';', '•']) {
        if !REQUIRED.iter().any(|w| sentence.contains(w))
            || OPTIONAL.iter().any(|w| sentence.contains(w))
        {
            continue;
        }
        for word in sentence.split(|c: char| !c.is_alphanumeric()) {
            let language = languages::by_name(word).or_else(|| {
                word.strip_suffix("kenntnisse")
                    .and_then(|stem| languages::by_name(stem))
            });
            if let Some(l) = language
                && !found.iter().any(|f| f == l.code)
            {
                found.push(l.code.to_owned());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posting(title: &str, description: &str) -> Posting {
        Posting {
            id: "greenhouse:acme:1".into(),
            title: title.into(),
            description: description.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_language_a_posting_is_written_in() {
        let german = posting(
            "Backend-Entwickler (m/w/d)",
            "Wir suchen eine erfahrene Entwicklerin oder einen erfahrenen Entwickler für \
             unsere Plattform. Du arbeitest mit Rust und Kubernetes in einem kleinen Team \
             und bist für den Betrieb unserer Dienste mitverantwortlich.",
        );
        assert_eq!(PostingFacts::of(&german).language.as_deref(), Some("de"));
        let english = posting(
            "Backend Engineer",
            "We are looking for an experienced engineer to build our platform. You will \
             work with Rust and Kubernetes in a small team and share the on-call rotation.",
        );
        assert_eq!(PostingFacts::of(&english).language.as_deref(), Some("en"));
        assert_eq!(PostingFacts::of(&posting("SRE", "")).language, None);
    }

    #[test]
    fn required_languages_are_read_from_the_text_and_wishes_are_not() {
        let of = |text: &str| required_languages(&text.to_lowercase());
        assert_eq!(of("Fluent German required."), ["de"]);
        assert_eq!(of("Verhandlungssichere Deutschkenntnisse."), ["de"]);
        assert_eq!(
            of("Sehr gute Deutsch- und Englischkenntnisse"),
            ["de", "en"]
        );
        assert_eq!(of("Français courant exigé."), ["fr"]);
        assert_eq!(of("Español nativo o bilingüe imprescindible"), ["es"]);
        assert_eq!(of("English at C1 level. Dutch is a plus."), ["en"]);
        assert_eq!(of("German is a plus"), Vec::<String>::new());
        assert_eq!(of("Deutschkenntnisse von Vorteil"), Vec::<String>::new());
        assert_eq!(of("Customers in Germany; fluent English"), ["en"]);
    }

    #[test]
    fn salary_per_year_in_its_currency() {
        let mut p = posting("Engineer", "");
        p.salary = Some(jobmatch_core::Salary {
            min: Some(5000.0),
            max: Some(6000.0),
            currency: Some("eur".into()),
            interval: Some("month".into()),
        });
        assert_eq!(yearly_salary(&p), Some((72_000.0, "EUR".to_owned())));
        p.salary = Some(jobmatch_core::Salary {
            min: Some(50.0),
            max: None,
            currency: Some("USD".into()),
            interval: None,
        });
        assert_eq!(yearly_salary(&p), Some((104_000.0, "USD".to_owned())));
        if let Some(s) = p.salary.as_mut() {
            s.currency = None;
        }
        assert_eq!(yearly_salary(&p), None);
    }

    #[test]
    fn level_type_and_regions_in_the_criteria_words() {
        let mut p = posting("Senior Rust Engineer", "");
        p.employment_type = Some("Full-Time".into());
        p.workplace = Workplace::Remote;
        p.locations = vec!["Remote (UK only)".into()];
        let facts = PostingFacts::of(&p);
        assert_eq!(facts.seniority, Some(Seniority::Senior));
        assert_eq!(facts.employment_type, Some(EmploymentType::FullTime));
        assert_eq!(facts.remote_regions, ["uk"]);
        p.workplace = Workplace::Onsite;
        assert!(PostingFacts::of(&p).remote_regions.is_empty());
    }
}
