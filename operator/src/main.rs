//! `jobmatch-operator`: reconciles `JobSource` and `MatchSubscription` resources into
//! worker deployments. Not built yet (the operator issue); until then this binary says so
//! instead of pretending to run.

fn main() {
    eprintln!(
        "jobmatch-operator {}: the Kubernetes operator is not built yet. \
         Run the workers without a cluster with `jobmatch all -f <dir>`.",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(2);
}
