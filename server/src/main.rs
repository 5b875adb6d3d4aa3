//! The `prism-server` command: `serve` (the default) and `token create|list|revoke`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use prism_server::config::AuthMode;
use prism_server::store::{SqliteStore, Store};
use prism_server::{Config, Core, Listeners, Metrics, SystemClock, serve, tokens};
use tracing_subscriber::EnvFilter;

/// Prism managed dynamic-DNS server.
///
/// Without a subcommand, `serve` runs with its defaults: registrations on 0.0.0.0:8080 and
/// the SQLite database ./data/prism.db (created on first start).
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// SQLite database file.
    #[arg(long, global = true, env = "PRISM_DATABASE_PATH", value_name = "PATH")]
    database_path: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Create, list and revoke registration tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Args, Clone, Default)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PRISM_SERVER_HOST")]
    host: Option<IpAddr>,
    /// Registration protocol port (0 picks a free port, printed at start).
    #[arg(long, env = "PRISM_SERVER_TCP_PORT")]
    tcp_port: Option<u16>,
    /// Authentication mode: token (default) or open (development only).
    #[arg(long, env = "PRISM_AUTH_MODE", value_parser = parse_auth_mode)]
    auth_mode: Option<AuthMode>,
    /// Registrations per minute per source IP (0 disables the limit).
    #[arg(long, env = "PRISM_RATE_LIMIT_REGISTRATIONS_PER_MINUTE")]
    rate_limit: Option<u32>,
    /// Log filter, e.g. info or prism_server=debug.
    #[arg(long, env = "PRISM_LOGGING_LEVEL")]
    log_level: Option<String>,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it (it is shown only this once).
    Create {
        /// Owner the token's hosts belong to.
        #[arg(long)]
        owner: String,
        /// Let the token see every host in the API.
        #[arg(long)]
        admin: bool,
    },
    /// List tokens (ids, owners, dates; never the tokens themselves).
    List,
    /// Revoke a token by id; hosts it registered keep their owner.
    Revoke {
        /// Token id from `token list`.
        id: i64,
    },
}

fn parse_auth_mode(text: &str) -> Result<AuthMode, String> {
    match text {
        "token" => Ok(AuthMode::Token),
        "open" => Ok(AuthMode::Open),
        other => Err(format!(
            "unknown auth mode {other:?}; accepted: token, open"
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut config = Config::default();
    if let Some(path) = &cli.database_path {
        config.database.path.clone_from(path);
    }
    let serve_args = match &cli.command {
        Some(Command::Serve(args)) => Some(args.clone()),
        None => Some(cli.serve.clone()),
        Some(Command::Token(_)) => None,
    };
    if let Some(args) = &serve_args {
        apply_serve_args(&mut config, args);
    }
    let filter = EnvFilter::try_new(&config.logging.level).unwrap_or_else(|err| {
        eprintln!(
            "invalid log level {:?} ({err}); using info",
            config.logging.level
        );
        EnvFilter::new("info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
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
            _ => run_server(config).await,
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

fn apply_serve_args(config: &mut Config, args: &ServeArgs) {
    if let Some(host) = args.host {
        config.server.host = host;
    }
    if let Some(port) = args.tcp_port {
        config.server.tcp_port = port;
    }
    if let Some(mode) = args.auth_mode {
        config.auth.mode = mode;
    }
    if let Some(limit) = args.rate_limit {
        config.rate_limit.registrations_per_minute = limit;
    }
    if let Some(level) = &args.log_level {
        config.logging.level.clone_from(level);
    }
}

async fn run_server(config: Config) -> anyhow::Result<()> {
    let metrics = Metrics::new()?;
    let store = SqliteStore::open(&config.database.path, Some(metrics.clone()))
        .with_context(|| format!("cannot open database {}", config.database.path.display()))?;
    let registration_addr = SocketAddr::new(config.server.host, config.server.tcp_port);
    let listener = tokio::net::TcpListener::bind(registration_addr)
        .await
        .with_context(|| format!("cannot listen for registrations on {registration_addr}"))?;
    let bound = listener.local_addr()?;
    let core = Core::start(config, Arc::new(store), Arc::new(SystemClock), metrics).await?;
    // A stable line on stdout, for operators and for tests that start the binary on port 0.
    println!("prism-server listening for registrations on {bound}");
    tracing::info!(%bound, database = %core.config.database.path.display(), "prism-server started");
    serve(
        core,
        Listeners {
            registration: listener,
        },
        shutdown_signal(),
    )
    .await;
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

async fn run_token_command(config: &Config, command: TokenCommand) -> anyhow::Result<()> {
    let path = &config.database.path;
    let store = SqliteStore::open(path, None)
        .with_context(|| format!("cannot open database {}", path.display()))?;
    let now = std::time::SystemTime::now();
    match command {
        TokenCommand::Create { owner, admin } => {
            let (record, token) = tokens::create(&store, &owner, admin, now).await?;
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
            tokens::revoke(&store, id, now).await?;
            eprintln!("revoked token {id}; running servers stop accepting it within a second");
        }
    }
    Ok(())
}
