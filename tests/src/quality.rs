//! jobmatch's own labelled set and the ranking measures over it (issue 14, part 6).
//!
//! Made up, in four languages: six job families, each written as a posting in English,
//! German, French and Spanish at two levels, placed in a city of its language (some
//! remote, some with a salary), so the set holds near-duplicates that differ only in
//! level, place, language or pay; and seventeen resumes, two a family in two languages
//! and five whose wanted jobs are written in another language than theirs, each with
//! the criteria its owner would set. Every (resume, posting) pair is graded
//! 0–3 by the written rules of [`grade`], never by hand, so the set can grow without
//! anyone tuning grades to a model.

use jobmatch_core::{
    Criteria, Posting, RemotePolicy, Salary, SalaryFloor, SalaryPeriod, Seniority, Workplace,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Backend,
    Frontend,
    Data,
    Platform,
    Nursing,
    Pastry,
}

impl Family {
    pub const ALL: [Family; 6] = [
        Family::Backend,
        Family::Frontend,
        Family::Data,
        Family::Platform,
        Family::Nursing,
        Family::Pastry,
    ];

    /// Families whose people could do each other's job with some retraining.
    fn related(self, other: Family) -> bool {
        use Family::*;
        matches!(
            (self, other),
            (Backend, Platform)
                | (Platform, Backend)
                | (Backend, Data)
                | (Data, Backend)
                | (Backend, Frontend)
                | (Frontend, Backend)
        )
    }
}

pub const LANGUAGES: [&str; 4] = ["en", "de", "fr", "es"];

/// (title, description) of a family in a language; `{level}` is the level's word.
fn text(family: Family, language: &str) -> (&'static str, &'static str) {
    use Family::*;
    match (family, language) {
        (Backend, "en") => (
            "{level} Backend Engineer",
            "You will design and run the backend services behind our product: APIs in Rust and Go, PostgreSQL, message queues, and the on-call rotation for them.",
        ),
        (Backend, "de") => (
            "{level} Backend-Entwickler (m/w/d)",
            "Du entwickelst und betreibst die Backend-Dienste hinter unserem Produkt: APIs in Rust und Go, PostgreSQL, Message Queues und die Rufbereitschaft dafür.",
        ),
        (Backend, "fr") => (
            "Développeur backend {level}",
            "Vous concevez et exploitez les services backend de notre produit : des API en Rust et en Go, PostgreSQL, des files de messages et les astreintes associées.",
        ),
        (Backend, "es") => (
            "Desarrollador backend {level}",
            "Diseñarás y mantendrás los servicios backend de nuestro producto: APIs en Rust y Go, PostgreSQL, colas de mensajes y las guardias correspondientes.",
        ),
        (Frontend, "en") => (
            "{level} Frontend Developer",
            "You will build accessible web interfaces in React and TypeScript with our designers, and care for their performance in the browser.",
        ),
        (Frontend, "de") => (
            "{level} Frontend-Entwickler (m/w/d)",
            "Du baust barrierefreie Weboberflächen mit React und TypeScript gemeinsam mit unseren Designern und kümmerst dich um ihre Performance im Browser.",
        ),
        (Frontend, "fr") => (
            "Développeur frontend {level}",
            "Vous créez des interfaces web accessibles en React et TypeScript avec nos designers et veillez à leurs performances dans le navigateur.",
        ),
        (Frontend, "es") => (
            "Desarrollador frontend {level}",
            "Crearás interfaces web accesibles con React y TypeScript junto a nuestros diseñadores y cuidarás su rendimiento en el navegador.",
        ),
        (Data, "en") => (
            "{level} Data Engineer",
            "You will build our data pipelines: batch and streaming jobs in Spark and Airflow, a warehouse in SQL, and the data quality checks analysts rely on.",
        ),
        (Data, "de") => (
            "{level} Data Engineer (m/w/d)",
            "Du baust unsere Datenpipelines: Batch- und Streaming-Jobs mit Spark und Airflow, ein Data Warehouse in SQL und die Datenqualitätsprüfungen für unsere Analysten.",
        ),
        (Data, "fr") => (
            "Ingénieur data {level}",
            "Vous construisez nos pipelines de données : traitements batch et streaming avec Spark et Airflow, un entrepôt en SQL et les contrôles de qualité des données.",
        ),
        (Data, "es") => (
            "Ingeniero de datos {level}",
            "Construirás nuestros pipelines de datos: procesos batch y streaming con Spark y Airflow, un almacén en SQL y los controles de calidad de datos.",
        ),
        (Platform, "en") => (
            "{level} Platform Engineer (SRE)",
            "You will run our Kubernetes clusters, write Terraform for the cloud, keep Prometheus alerts meaningful and make deployments boring.",
        ),
        (Platform, "de") => (
            "{level} Platform Engineer / SRE (m/w/d)",
            "Du betreibst unsere Kubernetes-Cluster, schreibst Terraform für die Cloud, hältst die Prometheus-Alarme sinnvoll und machst Deployments langweilig.",
        ),
        (Platform, "fr") => (
            "Ingénieur plateforme {level} (SRE)",
            "Vous exploitez nos clusters Kubernetes, écrivez le Terraform de notre cloud, gardez les alertes Prometheus pertinentes et rendez les déploiements ennuyeux.",
        ),
        (Platform, "es") => (
            "Ingeniero de plataforma {level} (SRE)",
            "Operarás nuestros clústeres de Kubernetes, escribirás Terraform para la nube, mantendrás útiles las alertas de Prometheus y harás aburridos los despliegues.",
        ),
        (Nursing, "en") => (
            "{level} Registered Nurse",
            "You will care for patients on our cardiology ward, give medication, work with the doctors on each patient's plan and take part in night shifts.",
        ),
        (Nursing, "de") => (
            "{level} Pflegefachkraft (m/w/d)",
            "Du versorgst Patientinnen und Patienten auf unserer kardiologischen Station, verabreichst Medikamente, planst die Pflege mit den Ärzten und arbeitest auch im Nachtdienst.",
        ),
        (Nursing, "fr") => (
            "Infirmier {level}",
            "Vous prenez soin des patients de notre service de cardiologie, administrez les traitements, travaillez avec les médecins sur chaque plan de soins et assurez des nuits.",
        ),
        (Nursing, "es") => (
            "Enfermero {level}",
            "Cuidarás a los pacientes de nuestra planta de cardiología, administrarás la medicación, trabajarás con los médicos en cada plan de cuidados y harás turnos de noche.",
        ),
        (Pastry, "en") => (
            "{level} Pastry Chef",
            "You will bake croissants, bread and cakes every morning, run the pastry section of our kitchen and create the seasonal desserts.",
        ),
        (Pastry, "de") => (
            "{level} Konditor (m/w/d)",
            "Du backst jeden Morgen Croissants, Brot und Torten, leitest die Patisserie unserer Küche und entwickelst die saisonalen Desserts.",
        ),
        (Pastry, "fr") => (
            "Pâtissier {level}",
            "Vous préparez chaque matin croissants, pains et gâteaux, dirigez la pâtisserie de notre cuisine et créez les desserts de saison.",
        ),
        (Pastry, "es") => (
            "Pastelero {level}",
            "Prepararás cada mañana cruasanes, pan y tartas, dirigirás la sección de pastelería de nuestra cocina y crearás los postres de temporada.",
        ),
        _ => ("", ""),
    }
}

fn city(language: &str) -> &'static str {
    match language {
        "de" => "Berlin, Germany",
        "fr" => "Paris, France",
        "es" => "Madrid, Spain",
        _ => "London, UK",
    }
}

fn currency(language: &str) -> &'static str {
    if language == "en" { "GBP" } else { "EUR" }
}

/// A posting of the set, with what its grades are made of.
pub struct LabelledPosting {
    pub posting: Posting,
    pub family: Family,
    pub level: Seniority,
    pub language: &'static str,
}

/// Every family in every language at two levels; the senior ones state a salary, and
/// the English and German backend and platform postings are remote as well as on site.
pub fn postings() -> Vec<LabelledPosting> {
    let mut all = Vec::new();
    for family in Family::ALL {
        for language in LANGUAGES {
            for level in [Seniority::Junior, Seniority::Senior] {
                let (title, description) = text(family, language);
                let word = if level == Seniority::Junior {
                    "Junior"
                } else {
                    "Senior"
                };
                let mut posting = Posting {
                    id: format!("set:{family:?}:{language}:{}", level.as_str()).to_lowercase(),
                    source: "set".into(),
                    title: title.replace("{level}", word).trim().to_owned(),
                    company: "Example".into(),
                    locations: vec![city(language).into()],
                    workplace: Workplace::Onsite,
                    url: "https://jobs.example.com".into(),
                    description: description.into(),
                    seniority: Some(level.as_str().into()),
                    ..Default::default()
                };
                if level == Seniority::Senior {
                    let top = match family {
                        Family::Nursing | Family::Pastry => 48_000.0,
                        _ => 85_000.0,
                    };
                    posting.salary = Some(Salary {
                        min: Some(top * 0.8),
                        max: Some(top),
                        currency: Some(currency(language).into()),
                        interval: Some("year".into()),
                    });
                }
                all.push(LabelledPosting {
                    posting,
                    family,
                    level,
                    language,
                });
                if matches!(family, Family::Backend | Family::Platform)
                    && matches!(language, "en" | "de")
                {
                    let mut remote = all[all.len() - 1].posting.clone();
                    remote.id.push_str(":remote");
                    remote.locations = vec!["Remote - Europe".into()];
                    remote.workplace = Workplace::Remote;
                    all.push(LabelledPosting {
                        posting: remote,
                        family,
                        level,
                        language,
                    });
                }
            }
        }
    }
    all
}

/// A resume of the set and the criteria its owner set.
#[derive(Clone)]
pub struct LabelledResume {
    pub name: &'static str,
    /// The language it is written in.
    pub language: &'static str,
    pub text: &'static str,
    pub family: Family,
    pub level: Seniority,
    pub criteria: Criteria,
}

pub fn resumes() -> Vec<LabelledResume> {
    let criteria = |remote, places: &[&str], languages: &[&str]| Criteria {
        remote,
        locations: places.iter().map(|p| p.to_string()).collect(),
        languages: languages.iter().map(|l| l.to_string()).collect(),
        min_score: 0.0,
        ..Default::default()
    };
    use Family::*;
    use RemotePolicy::*;
    use Seniority::*;
    vec![
        LabelledResume {
            name: "backend-en",
            language: "en",
            text: "Senior backend engineer, eight years building APIs and services in Go and Rust on PostgreSQL, with Kafka and on-call experience.",
            family: Backend,
            level: Senior,
            criteria: criteria(Allowed, &["London"], &["en"]),
        },
        LabelledResume {
            name: "backend-de",
            language: "de",
            text: "Erfahrene Backend-Entwicklerin: seit sieben Jahren Microservices in Rust und Go, PostgreSQL, Kafka, Rufbereitschaft.",
            family: Backend,
            level: Senior,
            criteria: criteria(Allowed, &["Berlin"], &["de", "en"]),
        },
        LabelledResume {
            name: "frontend-en",
            language: "en",
            text: "Junior frontend developer: two years of React and TypeScript, accessible design systems, CSS.",
            family: Frontend,
            level: Junior,
            criteria: criteria(Allowed, &["London"], &["en"]),
        },
        LabelledResume {
            name: "frontend-fr",
            language: "fr",
            text: "Développeuse frontend junior : deux ans de React et TypeScript, interfaces accessibles, intégration avec les designers.",
            family: Frontend,
            level: Junior,
            criteria: criteria(Allowed, &["Paris"], &["fr", "en"]),
        },
        LabelledResume {
            name: "data-en",
            language: "en",
            text: "Data engineer with six years of Spark, Airflow and SQL warehouses; built streaming pipelines and data quality checks.",
            family: Data,
            level: Senior,
            criteria: criteria(Allowed, &["London"], &["en"]),
        },
        LabelledResume {
            name: "data-es",
            language: "es",
            text: "Ingeniera de datos con seis años de experiencia en Spark, Airflow y SQL; pipelines de streaming y calidad de datos.",
            family: Data,
            level: Senior,
            criteria: criteria(Allowed, &["Madrid"], &["es", "en"]),
        },
        LabelledResume {
            name: "platform-en",
            language: "en",
            text: "Site reliability engineer: Kubernetes clusters in production, Terraform, Prometheus and Grafana, incident response.",
            family: Platform,
            level: Senior,
            criteria: criteria(Required, &[], &["en"]),
        },
        LabelledResume {
            name: "platform-de",
            language: "de",
            text: "SRE mit Erfahrung im Betrieb von Kubernetes-Clustern, Terraform, Prometheus und Grafana sowie im Incident-Management.",
            family: Platform,
            level: Senior,
            criteria: criteria(Allowed, &["Berlin"], &["de", "en"]),
        },
        LabelledResume {
            name: "nursing-en",
            language: "en",
            text: "Registered nurse, five years on a cardiology ward: patient care, medication, night shifts, care plans with physicians.",
            family: Nursing,
            level: Senior,
            criteria: Criteria {
                min_salary: Some(SalaryFloor {
                    amount: 50_000.0,
                    currency: "GBP".into(),
                    period: SalaryPeriod::Year,
                }),
                ..criteria(Excluded, &["London"], &["en"])
            },
        },
        LabelledResume {
            name: "nursing-fr",
            language: "fr",
            text: "Infirmière diplômée, cinq ans en service de cardiologie : soins aux patients, traitements, nuits, plans de soins.",
            family: Nursing,
            level: Senior,
            criteria: criteria(Excluded, &["Paris"], &["fr"]),
        },
        LabelledResume {
            name: "pastry-en",
            language: "en",
            text: "Junior pastry cook: croissants, bread and cakes in a hotel bakery, two years of early morning shifts.",
            family: Pastry,
            level: Junior,
            criteria: Criteria {
                seniority: vec![Junior, Mid],
                ..criteria(Excluded, &["London"], &["en"])
            },
        },
        LabelledResume {
            name: "pastry-es",
            language: "es",
            text: "Pastelero junior: dos años elaborando cruasanes, pan y tartas en un obrador, turnos de mañana.",
            family: Pastry,
            level: Junior,
            criteria: criteria(Excluded, &["Madrid"], &["es"]),
        },
        // Resumes whose wanted jobs are written in another language than theirs.
        LabelledResume {
            name: "data-en-europe",
            language: "en",
            text: "Data engineer, five years with Spark, Airflow and dbt on SQL warehouses; open to roles in Berlin, Paris or Madrid.",
            family: Data,
            level: Senior,
            criteria: criteria(
                Allowed,
                &["Berlin", "Paris", "Madrid"],
                &["en", "de", "fr", "es"],
            ),
        },
        LabelledResume {
            name: "nursing-de",
            language: "de",
            text: "Examinierte Pflegefachkraft mit sechs Jahren Erfahrung auf der Kardiologie: Patientenversorgung, Medikamentengabe, Nachtdienste.",
            family: Nursing,
            level: Senior,
            criteria: criteria(Excluded, &["Berlin", "Paris"], &["de", "fr"]),
        },
        LabelledResume {
            name: "pastry-fr",
            language: "fr",
            text: "Commis pâtissier junior : deux ans de viennoiseries, pains et entremets dans une boulangerie, service du matin.",
            family: Pastry,
            level: Junior,
            criteria: criteria(Excluded, &["Paris", "Madrid"], &["fr", "es"]),
        },
        LabelledResume {
            name: "platform-es",
            language: "es",
            text: "Ingeniero SRE: operación de clústeres de Kubernetes en producción, Terraform, Prometheus y Grafana, gestión de incidentes.",
            family: Platform,
            level: Senior,
            criteria: criteria(Required, &[], &["es", "en"]),
        },
        LabelledResume {
            name: "frontend-de",
            language: "de",
            text: "Junior-Frontend-Entwicklerin: zwei Jahre React und TypeScript, barrierefreie Komponenten, enge Zusammenarbeit mit dem Design.",
            family: Frontend,
            level: Junior,
            criteria: criteria(Allowed, &["Berlin", "London"], &["de", "en"]),
        },
    ]
}

/// The written rules. 0 where the posting breaks one of the resume's own criteria (its
/// place and remote policy, languages, levels, a salary stated below the floor: a
/// careful recruiter would not send it) or is in another, unrelated family; 1 for a
/// related family; 2 for the same family at another level; 3 for the same family at the
/// resume's level.
pub fn grade(resume: &LabelledResume, posting: &LabelledPosting) -> u8 {
    let c = &resume.criteria;
    let p = &posting.posting;
    let remote = p.workplace == Workplace::Remote;
    let in_place = c.locations.is_empty()
        || c.locations.iter().any(|l| {
            p.locations
                .iter()
                .any(|pl| pl.to_lowercase().contains(&l.to_lowercase()))
        });
    let place_ok = match c.remote {
        RemotePolicy::Required => remote,
        RemotePolicy::Allowed => remote || in_place,
        RemotePolicy::Excluded => !remote && in_place,
    };
    let language_ok = c.languages.is_empty() || c.languages.iter().any(|l| l == posting.language);
    let level_ok = c.seniority.is_empty() || c.seniority.contains(&posting.level);
    let pay_ok = match (&c.min_salary, &p.salary) {
        (Some(floor), Some(salary))
            if salary.currency.as_deref() == Some(floor.currency.as_str()) =>
        {
            salary.max.unwrap_or(0.0) >= floor.amount
        }
        _ => true,
    };
    if !place_ok || !language_ok || !level_ok || !pay_ok {
        return 0;
    }
    if posting.family == resume.family {
        if posting.level == resume.level { 3 } else { 2 }
    } else if posting.family.related(resume.family) {
        1
    } else {
        0
    }
}

/// nDCG at `k` of a ranking (grades in ranked order) against every grade there is.
pub fn ndcg_at(ranked: &[u8], all: &[u8], k: usize) -> f64 {
    let dcg = |grades: &[u8]| -> f64 {
        grades
            .iter()
            .take(k)
            .enumerate()
            .map(|(i, &g)| (2f64.powi(i32::from(g)) - 1.0) / ((i + 2) as f64).log2())
            .sum()
    };
    let mut ideal = all.to_vec();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let best = dcg(&ideal);
    if best == 0.0 { 0.0 } else { dcg(ranked) / best }
}

/// Average precision of a ranking, relevant meaning grade 2 or more, over every
/// relevant posting there is (those ranked out count as missed).
pub fn average_precision(ranked: &[u8], all: &[u8]) -> f64 {
    let relevant = all.iter().filter(|&&g| g >= 2).count();
    if relevant == 0 {
        return 0.0;
    }
    let mut hits = 0;
    let mut sum = 0.0;
    for (i, &g) in ranked.iter().enumerate() {
        if g >= 2 {
            hits += 1;
            sum += hits as f64 / (i + 1) as f64;
        }
    }
    sum / relevant as f64
}

/// Share of the first `k` ranked that are relevant (grade 2 or more).
pub fn precision_at(ranked: &[u8], k: usize) -> f64 {
    ranked.iter().take(k).filter(|&&g| g >= 2).count() as f64 / k as f64
}

/// The three measures averaged over the resumes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quality {
    pub ndcg10: f64,
    pub map: f64,
    pub p5: f64,
}

/// How a resume's postings are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    /// Cosine only.
    Dense,
    /// Cosine, the postings `evaluate` refuses left out.
    DenseAndCriteria,
}

/// The measures of `ranking` given each resume's and each posting's vector.
pub fn measure(
    resumes: &[LabelledResume],
    postings: &[LabelledPosting],
    resume_vectors: &[Vec<f32>],
    posting_vectors: &[Vec<f32>],
    ranking: Ranking,
) -> Quality {
    let mut total = Quality::default();
    for (resume, rv) in resumes.iter().zip(resume_vectors) {
        let all: Vec<u8> = postings.iter().map(|p| grade(resume, p)).collect();
        let mut scored: Vec<(f32, u8)> = postings
            .iter()
            .zip(posting_vectors)
            .zip(&all)
            .filter_map(|((p, pv), &g)| {
                let score = crate::parity::cosine(rv, pv) as f32;
                let kept = ranking == Ranking::Dense
                    || jobmatch_workers::matcher::criteria::evaluate(
                        &resume.criteria,
                        &p.posting,
                        score,
                    )
                    .is_ok();
                kept.then_some((score, g))
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let ranked: Vec<u8> = scored.iter().map(|&(_, g)| g).collect();
        total.ndcg10 += ndcg_at(&ranked, &all, 10);
        total.map += average_precision(&ranked, &all);
        total.p5 += precision_at(&ranked, 5);
    }
    let n = resumes.len().max(1) as f64;
    Quality {
        ndcg10: total.ndcg10 / n,
        map: total.map / n,
        p5: total.p5 / n,
    }
}

/// What `minScore` keeps on the set: for each threshold, the share of relevant pairs
/// (grade 2 or more) and of unrelated ones (grade 0, another family) scoring at least it.
pub fn calibration(
    resumes: &[LabelledResume],
    postings: &[LabelledPosting],
    resume_vectors: &[Vec<f32>],
    posting_vectors: &[Vec<f32>],
    thresholds: &[f32],
) -> Vec<(f32, f64, f64)> {
    let mut relevant = Vec::new();
    let mut unrelated = Vec::new();
    for (resume, rv) in resumes.iter().zip(resume_vectors) {
        for (p, pv) in postings.iter().zip(posting_vectors) {
            let score = crate::parity::cosine(rv, pv) as f32;
            if grade(resume, p) >= 2 {
                relevant.push(score);
            } else if p.family != resume.family && !p.family.related(resume.family) {
                unrelated.push(score);
            }
        }
    }
    let share = |scores: &[f32], t: f32| {
        scores.iter().filter(|&&s| s >= t).count() as f64 / scores.len().max(1) as f64
    };
    thresholds
        .iter()
        .map(|&t| (t, share(&relevant, t), share(&unrelated, t)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_on_rankings_worked_by_hand() {
        // Ideal order scores 1; the reverse of [3, 0] scores 1/log2(3)... by the formula.
        assert!((ndcg_at(&[3, 2, 0], &[3, 2, 0], 10) - 1.0).abs() < 1e-12);
        let reversed = ndcg_at(&[0, 3], &[3, 0], 10);
        assert!((reversed - 1.0 / 3f64.log2()).abs() < 1e-12, "{reversed}");
        // Relevant at ranks 1 and 3 of 2 relevant: (1/1 + 2/3) / 2.
        assert!(
            (average_precision(&[2, 0, 3], &[2, 0, 3]) - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12
        );
        // A relevant posting ranked out counts as missed.
        assert!((average_precision(&[3], &[3, 2]) - 0.5).abs() < 1e-12);
        assert!((precision_at(&[3, 0, 2, 0, 0, 3], 5) - 0.4).abs() < 1e-12);
    }

    #[test]
    fn the_set_has_every_kind_of_pair() {
        let (resumes, postings) = (resumes(), postings());
        assert_eq!(postings.len(), 6 * 4 * 2 + 8);
        for resume in &resumes {
            let grades: Vec<u8> = postings.iter().map(|p| grade(resume, p)).collect();
            assert!(
                grades.iter().any(|&g| g >= 2),
                "{}: nothing relevant",
                resume.name
            );
            assert!(grades.contains(&0), "{}", resume.name);
        }
        // Near-duplicates: a posting and its copy in another language or place differ
        // in grade only by the criteria.
        let backend_de = &resumes[1];
        let graded = |id: &str| {
            grade(
                backend_de,
                postings.iter().find(|p| p.posting.id == id).expect(id),
            )
        };
        assert_eq!(graded("set:backend:de:senior"), 3);
        assert_eq!(graded("set:backend:de:junior"), 2);
        assert_eq!(
            graded("set:backend:fr:senior"),
            0,
            "neither in Berlin nor in her languages"
        );
        assert_eq!(graded("set:backend:en:senior:remote"), 3);
        assert_eq!(graded("set:platform:de:senior"), 1);
        // A stated salary under the floor, a level not wanted.
        let nurse = &resumes[8];
        let nursing = |id: &str| {
            grade(
                nurse,
                postings.iter().find(|p| p.posting.id == id).expect(id),
            )
        };
        assert_eq!(
            (
                nursing("set:nursing:en:senior"),
                nursing("set:nursing:en:junior")
            ),
            (0, 2)
        );
        let pastry = &resumes[10];
        let baking = |id: &str| {
            grade(
                pastry,
                postings.iter().find(|p| p.posting.id == id).expect(id),
            )
        };
        assert_eq!(
            (
                baking("set:pastry:en:senior"),
                baking("set:pastry:en:junior")
            ),
            (0, 3)
        );
    }
}
