//! jobmatch's Kubernetes operator: reconciles `JobSource` and `MatchSubscription` into
//! the worker fleet, the workers' configuration in NATS, and status on each resource.
//!
//! - `crd`: the custom resources and their generated CRDs;
//! - `fleet`: the worker Deployments and scalers as data (pure);
//! - `status`: status and conditions as data (pure);
//! - `controller`: the reconcilers and the fleet loop;
//! - `apply`: the edge to the Kubernetes API for fleet objects;
//! - `config_plane`: the edge to NATS (configuration, reports, erasure);
//! - `leader`: the Lease that makes several replicas safe;
//! - `uninstall`: what `helm uninstall` runs first, so nothing is left behind;
//! - `metrics`, `settings`.

pub mod apply;
pub mod config_plane;
pub mod controller;
pub mod crd;
pub mod fleet;
pub mod leader;
pub mod metrics;
pub mod settings;
pub mod status;
pub mod uninstall;
