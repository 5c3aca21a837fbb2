//! The long-running roles of the `jobmatch` binary, named once: the workers run them
//! (`jobmatch fetcher`, ... or all of them in `jobmatch all`), and the operator builds one
//! Deployment per role with the role's name as its argument.

/// A long-running role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Fetcher,
    Embedder,
    Matcher,
    Notifier,
    /// The HTTP gateway: stateless, answered by the others over NATS request–reply.
    Api,
}

impl Role {
    /// Every role, in the order `jobmatch all` starts them.
    pub const ALL: [Role; 5] = [
        Role::Fetcher,
        Role::Embedder,
        Role::Matcher,
        Role::Notifier,
        Role::Api,
    ];

    /// The role's name: its subcommand, its Deployment's suffix, its label value.
    pub const fn name(self) -> &'static str {
        match self {
            Role::Fetcher => "fetcher",
            Role::Embedder => "embedder",
            Role::Matcher => "matcher",
            Role::Notifier => "notifier",
            Role::Api => "api",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_lowercase_words() {
        let names: std::collections::BTreeSet<_> = Role::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), Role::ALL.len());
        assert!(
            names
                .iter()
                .all(|n| n.chars().all(|c| c.is_ascii_lowercase()))
        );
        assert_eq!(Role::Embedder.to_string(), "embedder");
    }
}
