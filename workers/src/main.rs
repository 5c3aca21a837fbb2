use clap::Parser;
use jobmatch_workers::cli::{Cli, Command, Role};
use jobmatch_workers::{bus::Bus, commands, runtime};
use tracing_subscriber::EnvFilter;

/// The embedder allocates and frees large buffers per batch; mimalloc reuses them where
/// glibc returns them to the kernel and page-faults them back in.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging(format: &str) {
    // The NATS client logs every connection event at info; ours are the interesting ones.
    let filter = EnvFilter::try_from_env("JOBMATCH_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,async_nats=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    jobmatch_workers::tls::install_crypto_provider();
    let c = &cli.connections;
    if let Command::Embed = cli.command {
        return commands::embed(c);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match &cli.command {
            Command::All(f) => {
                // The API needs a listener; without --listen the rest runs alone.
                let roles: Vec<Role> = Role::ALL
                    .into_iter()
                    .filter(|r| *r != Role::Api || c.listen.is_some())
                    .collect();
                runtime::run_roles(c, &roles, &f.files).await
            }
            Command::Fetcher(f) => runtime::run_roles(c, &[Role::Fetcher], &f.files).await,
            Command::Embedder(f) => runtime::run_roles(c, &[Role::Embedder], &f.files).await,
            Command::Matcher(f) => runtime::run_roles(c, &[Role::Matcher], &f.files).await,
            Command::Notifier(f) => runtime::run_roles(c, &[Role::Notifier], &f.files).await,
            Command::Api(f) => {
                if c.listen.is_none() {
                    anyhow::bail!("jobmatch api serves HTTP: give it --listen (JOBMATCH_LISTEN), e.g. 0.0.0.0:8080");
                }
                runtime::run_roles(c, &[Role::Api], &f.files).await
            }
            Command::Apply(f) => {
                let loaded = jobmatch_workers::config::load_paths(&f.files);
                let bus = Bus::connect_to(&c.nats(), jobmatch_bus::Mode::KeepExisting).await?;
                let written = bus.apply_config(&loaded).await?;
                for e in &loaded.errors {
                    eprintln!("error: {e}");
                }
                println!(
                    "{} sources, {} subscriptions applied ({written} changed), {} invalid",
                    loaded.sources.len(),
                    loaded.subscriptions.len(),
                    loaded.errors.len()
                );
                if loaded.errors.is_empty() {
                    Ok(())
                } else {
                    std::process::exit(1)
                }
            }
            Command::Fetch(f) => {
                if commands::fetch(c, &f.files).await? {
                    Ok(())
                } else {
                    std::process::exit(1)
                }
            }
            Command::Report { wait_idle, timeout } => {
                commands::report(c, *wait_idle, *timeout).await
            }
            Command::DeadLetters { action } => commands::dead_letters(c, action).await,
            Command::Embed => unreachable!("handled above"),
        }
    })
}
