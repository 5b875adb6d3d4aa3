//! The binary's command line: subcommands, flags and the `--help` text.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Examples and exit codes, shown after the options by `--help`.
const AFTER_HELP: &str = "\
Examples:
  prism-server                                   serve with the defaults (./data/prism.db)
  prism-server token create --owner ops          create a registration token (printed once)
  prism-server serve --dns-port 53 --dns-zone dyn.example.net.
                                                 production DNS on port 53 for your zone
  prism-server serve --database-url postgres://prism@db:5432/prism --node-name edge-1
                                                 one node of a cluster on PostgreSQL
  prism-server check-config --config prism.yaml --print
                                                 validate a configuration and show it merged

Exit status:
  0  success (check-config: the configuration is valid)
  1  the configuration is invalid, or the server or command failed
  2  the command line is wrong: an unknown flag or subcommand, a flag value of the wrong form";

/// Prism managed dynamic-DNS server.
///
/// Without a subcommand, `serve` runs with its defaults: registrations on 0.0.0.0:8080, the
/// REST API on 0.0.0.0:8081, DNS on port 5353 and the SQLite database ./data/prism.db
/// (created on first start). Settings come from flags, then PRISM_<SECTION>_<KEY> environment
/// variables, then the configuration file, then defaults (see docs/CONFIGURATION.md).
#[derive(Parser)]
#[command(version, about, long_about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Configuration file (YAML). Default: prism.yaml in the working directory, if present.
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "PRISM_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// SQLite database file (database.path).
    #[arg(long, global = true, value_name = "PATH")]
    pub database_path: Option<PathBuf>,
    /// Database URL (database.url): postgres://USER[:PASSWORD]@HOST:PORT/DB selects
    /// PostgreSQL, shared by the nodes of a cluster; sqlite:PATH an SQLite file.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server (the default).
    #[command(after_help = AFTER_HELP)]
    Serve(ServeArgs),
    /// Validate the configuration without starting; exit 0 when valid, 1 otherwise.
    #[command(after_help = AFTER_HELP)]
    CheckConfig {
        /// The same flags as `serve`, so the exact command line can be checked.
        #[command(flatten)]
        serve: ServeArgs,
        /// Print the effective configuration (all keys, after merging) as YAML.
        #[arg(long)]
        print: bool,
        /// Print every key with its environment variable and default.
        #[arg(long)]
        keys: bool,
    },
    /// Create, list and revoke registration tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// Flags for the most common keys; they override the environment and the file.
#[derive(Args, Clone, Default)]
pub struct ServeArgs {
    /// Address to listen on (server.host).
    #[arg(long)]
    pub host: Option<IpAddr>,
    /// Registration protocol port (server.tcp_port; 0 picks a free port, printed at start).
    #[arg(long)]
    pub tcp_port: Option<u16>,
    /// REST API port (server.api_port; 0 picks a free port, printed at start).
    #[arg(long)]
    pub api_port: Option<u16>,
    /// Concurrent registration connections (server.max_connections).
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Authentication mode (auth.mode): token (default) or open (development only).
    #[arg(long)]
    pub auth_mode: Option<String>,
    /// Registrations per minute per source IP (rate_limit.registrations_per_minute; 0: off).
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Log filter (logging.level), e.g. info or prism_server=debug.
    #[arg(long)]
    pub log_level: Option<String>,
    /// DNS port, UDP and TCP (dns.port; default 5353, which is also the port of multicast
    /// DNS (mDNS) on many machines; production uses 53; 0 picks a free port).
    #[arg(long, value_name = "PORT")]
    pub dns_port: Option<u16>,
    /// The zone answered for (dns.zone), e.g. dyn.example.net.
    #[arg(long, value_name = "ZONE")]
    pub dns_zone: Option<String>,
    /// This node's name (cluster.node_name; default: the machine's hostname).
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
}

#[derive(Subcommand)]
pub enum TokenCommand {
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
