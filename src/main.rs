//! The `wxlink` command: `serve` (default), `check`, `sim`, `hash-key`, `reseal`,
//! `import-followers`.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use wxlink::app::App;
use wxlink::clock::Clock;
use wxlink::config::Config;

#[derive(Parser)]
#[command(
    version,
    about = "WeChat identity linking, central access token and notifications"
)]
struct Cli {
    /// Configuration file (TOML). Without one, and without apps, wxlink starts the sandbox.
    #[arg(long, global = true, env = "WXLINK_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve,
    /// Check the configuration, the database and each app's credentials against WeChat,
    /// changing nothing; exits non-zero when anything failed.
    Check,
    /// Run the WeChat simulator alone. With --config it registers the configured apps;
    /// more apps and people through its /_sim/ routes.
    Sim {
        #[arg(long, env = "WXLINK_SIM_LISTEN", default_value = "127.0.0.1:9090")]
        listen: SocketAddr,
    },
    /// Print the key_sha256 to put in [[api_keys]] for a key read from standard input.
    HashKey,
    /// Re-seal every stored secret under `storage_key` (after a rotation, with the old key
    /// in `storage_key_previous`); safe while the service runs.
    Reseal,
    /// Import an Official Account's existing followers (user/get + batchget), printing
    /// progress; resumes an import a crash interrupted, or follows one a service runs.
    ImportFollowers {
        /// The app's short name (`id` in `[[apps]]`).
        app: String,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    wxlink::telemetry::init();
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wxlink: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let config = Config::load(cli.config.as_deref())?;
            let app = App::build(config, Clock::system()).await?;
            let ctx = app.context().clone();
            if let Some(sb) = app.sandbox() {
                println!("{}", sb.banner(&ctx.config.database_url, app.public_url()));
                if let Some(warning) = sb.public_warning(ctx.config.listen, app.public_url()) {
                    eprintln!("{warning}");
                    tracing::warn!(listen = %ctx.config.listen, url = %app.public_url(), "the sandbox is reachable from other machines and shows its API key on its page");
                }
            }
            tracing::info!(url = %app.public_url(), port = app.port(), store = ctx.store.backend_name(), apps = ctx.config.apps.len(), sandbox = ctx.config.sandbox, "wxlink listening");
            app.run_until_stopped(shutdown_signal()).await?;
        }
        Command::Check => {
            let passed = wxlink::check::run(cli.config.as_deref(), &mut std::io::stdout()).await;
            if !passed {
                anyhow::bail!("check failed");
            }
        }
        Command::Sim { listen } => {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            println!("WeChat simulator on http://{}", listener.local_addr()?);
            let sim = wxlink::sim::Sim::new(Clock::system());
            if let Some(path) = cli.config.as_deref() {
                register_configured_apps(&sim, &Config::load(Some(path))?);
            }
            wxlink::sim::serve(listener, sim, shutdown_signal()).await?;
        }
        Command::Reseal => {
            let config = Config::load(cli.config.as_deref())?;
            let counts = wxlink::store::reseal(&config, &mut |line| println!("{line}")).await?;
            let unopenable: u64 = counts.iter().map(|c| c.unopenable).sum();
            if unopenable > 0 {
                println!(
                    "{unopenable} values open with neither storage_key nor storage_key_previous: left as they are"
                );
            } else {
                println!(
                    "done: every stored secret is sealed under storage_key; storage_key_previous may be removed"
                );
            }
        }
        Command::ImportFollowers { app } => {
            let config = Config::load(cli.config.as_deref())?;
            let job = wxlink::followers::import::run_cli(&config, &app, 1000, &mut |line| {
                println!("{line}")
            })
            .await?;
            match job.state.as_str() {
                "done" => println!(
                    "done: {} followers imported, {} bound to users",
                    job.imported, job.bound
                ),
                "failed" => anyhow::bail!(
                    "the import failed: {}",
                    job.last_error.as_deref().unwrap_or("unknown error")
                ),
                _ => {}
            }
        }
        Command::HashKey => {
            let mut key = String::new();
            std::io::stdin().read_line(&mut key)?;
            println!("{}", wxlink::domain::hash_token(key.trim()));
        }
    }
    Ok(())
}

/// `wxlink sim --config` knows the same apps as the service: same appids, secrets and push
/// settings (pushing to the service's public URL, or its listen address), the service's
/// public host as authorization domain, and one unionid group.
fn register_configured_apps(sim: &wxlink::sim::Sim, config: &Config) {
    let auth_domain = config
        .public_url
        .as_ref()
        .and_then(wxlink::domain::host_and_port);
    let service = match &config.public_url {
        Some(u) => u.to_string(),
        None => format!("http://127.0.0.1:{}", config.listen.port()),
    };
    for app in &config.apps {
        let sim_app = wxlink::sim::SimApp {
            auth_domain: auth_domain.clone(),
            unionid_group: Some("configured".to_owned()),
            ..wxlink::sim::SimApp::for_config(app, &service)
        };
        match &sim_app.push_url {
            Some(url) => println!(
                "  app {} ({}), pushes in {} mode to {url}",
                app.id,
                app.wechat.appid,
                sim_app.push_mode()
            ),
            None => println!(
                "  app {} ({}), no push_token: no pushes",
                app.id, app.wechat.appid
            ),
        }
        sim.add_app(sim_app);
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
