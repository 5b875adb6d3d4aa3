//! The `prism-server` command: `serve` (the default) and `token create|list|revoke`.

mod cli;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use prism_server::config::loader::key_table;
use prism_server::config::reload::{LogFilterSetter, Reloader};
use prism_server::config::{AuthMode, LogFormat, StoreChoice};
use prism_server::config::{ConfigSources, LiveConfig, absolute_path, redact_password};
use prism_server::core::tokens;
use prism_server::shell::{api, descriptors, dns};
use prism_server::store::{PostgresStore, SqliteStore, Store};
use prism_server::{Config, Listeners, Metrics, Node, SystemClock, serve};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

use cli::{Cli, Command, ServeArgs, TokenCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut sources = ConfigSources::from_process(cli.config.clone());
    if let Some(path) = &cli.database_path {
        sources.flag(
            "database.path",
            "--database-path",
            path.display().to_string(),
        );
    }
    if let Some(url) = &cli.database_url {
        sources.flag("database.url", "--database-url", url.as_str());
    }
    let serve_args = match &cli.command {
        Some(Command::Serve(args)) => Some(args.clone()),
        None => Some(cli.serve.clone()),
        Some(Command::CheckConfig { serve, .. }) => Some(serve.clone()),
        Some(Command::Token(_)) => None,
    };
    if let Some(args) = &serve_args {
        add_serve_flags(&mut sources, args);
    }
    let config = match sources.load() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: invalid configuration: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::CheckConfig { print, keys, .. }) = &cli.command {
        return check_config(&sources, &config, *print, *keys);
    }
    let filter =
        EnvFilter::try_new(&config.logging.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, filter_handle) = tracing_subscriber::reload::Layer::new(filter);
    // Colour codes only for a person at a terminal: in a file or a pipe they are noise.
    let (text, json) = match config.logging.format {
        LogFormat::Text => (
            Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            ),
            None,
        ),
        LogFormat::Json => (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            ),
        ),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .init();
    let set_log_filter: LogFilterSetter = Box::new(move |level: &str| {
        let filter = EnvFilter::try_new(level).map_err(|err| err.to_string())?;
        filter_handle.reload(filter).map_err(|err| err.to_string())
    });
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Some(Command::Token(command)) => run_token_command(&config, command).await,
            _ => run_server(config, sources, set_log_filter).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn add_serve_flags(sources: &mut ConfigSources, args: &ServeArgs) {
    if let Some(host) = args.host {
        sources.flag("server.host", "--host", host.to_string());
    }
    if let Some(port) = args.tcp_port {
        sources.flag("server.tcp_port", "--tcp-port", port);
    }
    if let Some(port) = args.api_port {
        sources.flag("server.api_port", "--api-port", port);
    }
    if let Some(max) = args.max_connections {
        sources.flag("server.max_connections", "--max-connections", max);
    }
    if let Some(mode) = &args.auth_mode {
        sources.flag("auth.mode", "--auth-mode", mode.as_str());
    }
    if let Some(limit) = args.rate_limit {
        sources.flag("rate_limit.registrations_per_minute", "--rate-limit", limit);
    }
    if let Some(level) = &args.log_level {
        sources.flag("logging.level", "--log-level", level.as_str());
    }
    if let Some(port) = args.dns_port {
        sources.flag("dns.port", "--dns-port", port);
    }
    if let Some(zone) = &args.dns_zone {
        sources.flag("dns.zone", "--dns-zone", zone.as_str());
    }
    if let Some(name) = &args.node_name {
        sources.flag("cluster.node_name", "--node-name", name.as_str());
    }
}

/// `check-config`: the configuration already loaded and validated; report it.
fn check_config(sources: &ConfigSources, config: &Config, print: bool, keys: bool) -> ExitCode {
    let origin = sources.file.as_ref().map_or_else(
        || "defaults and environment (no file)".to_owned(),
        |f| f.display().to_string(),
    );
    eprintln!("configuration OK: {origin}");
    if print {
        match serde_norway::to_string(config) {
            Ok(yaml) => print!("{yaml}"),
            Err(err) => {
                eprintln!("error: cannot render the configuration: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    if keys {
        for (key, env, default) in key_table() {
            println!("{key}\t{env}\t{default}");
        }
    }
    ExitCode::SUCCESS
}

async fn run_server(
    config: Config,
    sources: ConfigSources,
    set_log_filter: LogFilterSetter,
) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let open_files = descriptors::ensure(&descriptors::Budget::of(&config, cores))?;
    tracing::debug!(open_files, "open-file limit");
    let metrics = Metrics::new()?;
    let store = open_store(&config, Some(metrics.clone())).await?;
    announce(format_args!(
        "prism-server using database {}",
        config.database.describe()
    ));
    if config.auth.mode == AuthMode::Token {
        let tokens = store.list_tokens().wait().await?;
        if tokens.iter().all(|token| token.revoked_at.is_some()) {
            announce(format_args!(
                "prism-server: no registration token exists yet, so no host can register. \
                 Create one (it is printed once) with:"
            ));
            announce(format_args!(
                "  {}",
                token_create_command(&config, sources.file.as_deref())
            ));
        }
    }
    let registration_addr = SocketAddr::new(config.server.host, config.server.tcp_port);
    let listener = tokio::net::TcpListener::bind(registration_addr)
        .await
        .with_context(|| format!("cannot listen for registrations on {registration_addr}"))?;
    let bound = listener.local_addr()?;
    let api_addr = SocketAddr::new(config.server.host, config.server.api_port);
    // The API's socket belongs to its own low-priority runtime, readiness events included.
    let api_runtime =
        api::runtime(config.api.worker_threads).context("cannot start the API's runtime")?;
    let api_listener = api_runtime
        .spawn(tokio::net::TcpListener::bind(api_addr))
        .await
        .context("the API's runtime stopped")?
        .with_context(|| format!("cannot listen for the REST API on {api_addr}"))?;
    let api_bound = api_listener.local_addr()?;
    let mut listeners = Listeners::new(listener);
    listeners.api = Some(api_listener);
    listeners.api_runtime = Some(api_runtime.handle());
    let dns_bound = if config.dns.enabled {
        let sockets = dns::bind(
            config.server.host,
            config.dns.port,
            cores,
            config.dns.udp_receive_buffer_bytes,
        )
        .await
        .with_context(|| {
            format!(
                "cannot listen for DNS on {}",
                SocketAddr::new(config.server.host, config.dns.port)
            )
        })?;
        listeners.dns_udp = sockets.udp;
        listeners.dns_tcp = Some(sockets.tcp);
        Some(sockets.local_addr)
    } else {
        None
    };
    let database = config.database.describe();
    let live = LiveConfig::new(config);
    let clock = Arc::new(SystemClock);
    let node = Node::start(live.clone(), store, clock.clone(), metrics.clone()).await?;
    let stop_reload = CancellationToken::new();
    let reloader = Reloader::new(live, sources, metrics, clock, set_log_filter);
    let reload_task = tokio::spawn(
        reloader
            .watch_sighup(stop_reload.clone())
            .context("cannot install the SIGHUP handler")?,
    );
    // Stable lines on stdout, for operators and for tests that start the binary on port 0.
    announce(format_args!(
        "prism-server listening for registrations on {bound}"
    ));
    announce(format_args!(
        "prism-server serving the REST API on {api_bound}"
    ));
    if let Some(address) = dns_bound {
        announce(format_args!("prism-server answering DNS on {address}"));
    }
    tracing::info!(%bound, %api_bound, %database, "prism-server started");
    serve(node, listeners, shutdown_signal()).await;
    stop_reload.cancel();
    let _ = reload_task.await;
    // `serve` waited for the API's tasks; dropping the runtime ends its idle threads.
    drop(api_runtime);
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the server with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => tracing::info!("SIGINT received"),
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
    }
}

/// The store `database.*` selects: the SQLite file, or the PostgreSQL database (migrated).
async fn open_store(config: &Config, metrics: Option<Metrics>) -> anyhow::Result<Arc<dyn Store>> {
    let database = &config.database;
    let store: Arc<dyn Store> = match database.store().map_err(anyhow::Error::msg)? {
        StoreChoice::Sqlite(path) => Arc::new(
            SqliteStore::open(&path, metrics)
                .with_context(|| format!("cannot open database {}", database.describe()))?,
        ),
        StoreChoice::Postgres(url) => Arc::new(
            PostgresStore::open(&url, database.connection_pool_size, metrics)
                .await
                .with_context(|| format!("cannot open database {}", database.describe()))?,
        ),
    };
    Ok(store)
}

async fn run_token_command(config: &Config, command: TokenCommand) -> anyhow::Result<()> {
    let store = open_store(config, None).await?;
    // stdout of `token create` is the token alone, for scripts; the rest goes to stderr.
    eprintln!("prism-server using database {}", config.database.describe());
    let store = store.as_ref();
    let now = std::time::SystemTime::now();
    match command {
        TokenCommand::Create { owner, admin } => {
            let (record, token) = tokens::create(store, &owner, admin, now).await?;
            eprintln!(
                "created token {} for owner '{}'{}; store it now, it is not shown again:",
                record.id,
                record.owner,
                if record.admin { " (admin)" } else { "" }
            );
            println!("{token}");
        }
        TokenCommand::List => {
            let tokens = store.list_tokens().wait().await?;
            print!("{}", tokens::format_table(&tokens));
        }
        TokenCommand::Revoke { id } => {
            tokens::revoke(store, id, now).await?;
            eprintln!("revoked token {id}; running servers stop accepting it within a second");
        }
    }
    Ok(())
}

/// The `token create` command that reaches the database `config` selects, from any working
/// directory: the configuration file and the database as absolute paths.
fn token_create_command(config: &Config, file: Option<&Path>) -> String {
    let mut command = "prism-server token create --owner OWNER".to_owned();
    if let Some(file) = file {
        command.push_str(" --config ");
        command.push_str(&shell_quoted(&absolute_path(file).display().to_string()));
    }
    match config.database.store() {
        // The flag that names it in the configuration, so it also beats the environment.
        Ok(StoreChoice::Sqlite(path)) if config.database.url.trim().is_empty() => {
            command.push_str(" --database-path ");
            command.push_str(&shell_quoted(&absolute_path(&path).display().to_string()));
        }
        Ok(StoreChoice::Sqlite(path)) => {
            command.push_str(" --database-url ");
            command.push_str(&shell_quoted(&format!(
                "sqlite:{}",
                absolute_path(&path).display()
            )));
        }
        Ok(StoreChoice::Postgres(url)) if redact_password(&url) == url => {
            command.push_str(" --database-url ");
            command.push_str(&shell_quoted(&url));
        }
        // A URL with a password: the same database.url as this server, not printed here.
        _ => command.push_str(" (with this server's database.url)"),
    }
    command
}

/// `word` as a POSIX shell reads it back: as is when it is plain, else in single quotes.
fn shell_quoted(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:@+=,".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Prints a start-up line on stdout (operators and tests read the bound addresses there).
/// A closed stdout must not take the server down, so write errors are ignored.
fn announce(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}
