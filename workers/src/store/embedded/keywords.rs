//! A collection's indexed payload fields as keywords: each (field, keyword) pair is
//! interned once as a number, each row keeps the numbers of its own, and a filter is
//! compiled into numbers once per search, so checking a row reads a few integers
//! instead of decoding its payload.
//!
//! A field holds a keyword as [`Condition::accepts`] says: a string equal to it, an
//! array with such a string, or a boolean spelled `true`/`false`.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::super::{Condition, Filter};

#[derive(Default)]
pub(super) struct Keywords {
    fields: Vec<String>,
    ids: HashMap<String, HashMap<String, u32>>,
    next: u32,
}

/// A filter over rows' keyword numbers.
pub(super) struct Compiled {
    must: Vec<Holds>,
    should: Vec<Holds>,
    must_not: Vec<Holds>,
}

enum Holds {
    /// The row has one of these (none: never holds).
    Any(Vec<u32>),
    Nested(Compiled),
}

fn keywords_of(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        Value::Bool(true) => vec!["true"],
        Value::Bool(false) => vec!["false"],
        _ => Vec::new(),
    }
}

impl Keywords {
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// Adds fields to index; whether any was new (rows must then be indexed again).
    pub fn add_fields<S: AsRef<str>>(&mut self, fields: &[S]) -> bool {
        let mut added = false;
        for field in fields {
            let field = field.as_ref();
            if !self.fields.iter().any(|f| f == field) {
                self.fields.push(field.to_owned());
                self.ids.entry(field.to_owned()).or_default();
                added = true;
            }
        }
        added
    }

    /// The numbers of a payload's keywords in indexed fields, sorted.
    pub fn of(&mut self, payload: &Map<String, Value>) -> Box<[u32]> {
        let mut numbers = Vec::new();
        for field in &self.fields {
            let (Some(value), Some(ids)) = (payload.get(field), self.ids.get_mut(field)) else {
                continue;
            };
            for keyword in keywords_of(value) {
                let id = match ids.get(keyword) {
                    Some(&id) => id,
                    None => {
                        let id = self.next;
                        self.next += 1;
                        ids.insert(keyword.to_owned(), id);
                        id
                    }
                };
                numbers.push(id);
            }
        }
        numbers.sort_unstable();
        numbers.dedup();
        numbers.into_boxed_slice()
    }

    /// The filter in keyword numbers; `None` when it names a field that is not indexed
    /// (the caller then checks decoded payloads).
    pub fn compile(&self, filter: &Filter) -> Option<Compiled> {
        let all = |conditions: &[Condition]| -> Option<Vec<Holds>> {
            conditions.iter().map(|c| self.condition(c)).collect()
        };
        Some(Compiled {
            must: all(&filter.must)?,
            should: all(&filter.should)?,
            must_not: all(&filter.must_not)?,
        })
    }

    fn condition(&self, condition: &Condition) -> Option<Holds> {
        let ids = |key: &str, values: &mut dyn Iterator<Item = &String>| -> Option<Holds> {
            if !self.fields.iter().any(|f| f == key) {
                return None;
            }
            let known = self.ids.get(key);
            Some(Holds::Any(
                values
                    .filter_map(|v| known.and_then(|k| k.get(v.as_str())).copied())
                    .collect(),
            ))
        };
        match condition {
            Condition::Keyword { key, value } => ids(key, &mut std::iter::once(value)),
            Condition::AnyKeyword { key, values } => ids(key, &mut values.iter()),
            Condition::Nested(filter) => self.compile(filter).map(Holds::Nested),
        }
    }
}

impl Compiled {
    /// Whether a row with these keyword numbers (sorted) passes.
    pub fn accepts(&self, row: &[u32]) -> bool {
        self.must.iter().all(|h| h.holds(row))
            && (self.should.is_empty() || self.should.iter().any(|h| h.holds(row)))
            && !self.must_not.iter().any(|h| h.holds(row))
    }
}

impl Holds {
    fn holds(&self, row: &[u32]) -> bool {
        match self {
            Holds::Any(ids) => ids.iter().any(|id| row.binary_search(id).is_ok()),
            Holds::Nested(filter) => filter.accepts(row),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A compiled filter decides every payload as `Filter::accepts` does.
    #[test]
    fn compiled_filters_agree_with_the_reference() {
        let payloads: Vec<Map<String, Value>> = [
            json!({"city": "berlin", "tags": ["rust", "go"], "remote": true}),
            json!({"city": "paris", "tags": [], "remote": false}),
            json!({"city": ["lyon", "paris"], "n": 3}),
            json!({}),
        ]
        .into_iter()
        .filter_map(|v| v.as_object().cloned())
        .collect();
        let kw = |k: &str, v: &str| Condition::keyword(k, v);
        let filters = [
            Filter::default(),
            Filter {
                must: vec![kw("city", "paris")],
                ..Default::default()
            },
            Filter {
                should: vec![kw("tags", "go"), kw("remote", "false")],
                ..Default::default()
            },
            Filter {
                must_not: vec![Condition::Nested(Filter {
                    must: vec![kw("remote", "true")],
                    must_not: vec![Condition::AnyKeyword {
                        key: "city".into(),
                        values: vec!["lyon".into(), "berlin".into(), "nowhere".into()],
                    }],
                    ..Default::default()
                })],
                ..Default::default()
            },
            Filter {
                must: vec![kw("city", "never-seen")],
                ..Default::default()
            },
        ];
        let mut keywords = Keywords::default();
        keywords.add_fields(&["city", "tags", "remote"]);
        let rows: Vec<Box<[u32]>> = payloads.iter().map(|p| keywords.of(p)).collect();
        for filter in &filters {
            let compiled = keywords.compile(filter).expect("indexed fields only");
            for (payload, row) in payloads.iter().zip(&rows) {
                assert_eq!(
                    compiled.accepts(row),
                    filter.accepts(payload),
                    "{filter:?} on {payload:?}"
                );
            }
        }
        let unindexed = Filter {
            must: vec![kw("n", "3")],
            ..Default::default()
        };
        assert!(keywords.compile(&unindexed).is_none());
    }
}
