//! What tests start from: the usual configurations and registration tokens.

use std::time::SystemTime;

use prism_server::Config;
use prism_server::config::AuthMode;
use prism_server::store::Store;

use crate::clock::hold_clock;

/// The defaults in open auth mode (any client may register any free name), without the
/// rate limits.
pub fn open_config() -> Config {
    let mut config = token_config();
    config.auth.mode = AuthMode::Open;
    config
}

/// The defaults (token auth mode) without the rate limits (new names per source, heartbeats
/// per host): tests register and heartbeat far faster than real clients.
pub fn token_config() -> Config {
    let mut config = Config::default();
    config.rate_limit.registrations_per_minute = 0;
    config.rate_limit.min_heartbeat_interval_secs = Some(0.0);
    config
}

/// Creates a token for `owner` in `store` and returns its text. A node started on `store`
/// afterwards knows it at once; a running node, after its next token refresh.
pub async fn create_token(store: &dyn Store, owner: &str, admin: bool) -> String {
    hold_clock(prism_server::core::tokens::create(
        store,
        owner,
        admin,
        SystemTime::now(),
    ))
    .await
    .unwrap_or_else(|err| panic!("create a token for {owner}: {err}"))
    .1
}
