//! Where traffic goes: `HOST:PORT` targets (an IP literal, or a name resolved once at start),
//! an optional `http://`/`https://` scheme for the API workload, curl-style `--resolve`
//! overrides, and how heartbeat hosts are spread over several targets.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;

use clap::ValueEnum;

/// How long the start-up probe waits for each address of a name with several.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The URL scheme of an API target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP/1.1.
    Http,
    /// HTTP over TLS.
    Https,
}

/// A target as written on the command line: `HOST:PORT`, `[IPv6]:PORT`, or for the API
/// workload `http(s)://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    /// `http://` or `https://` when given.
    pub scheme: Option<Scheme>,
    /// A name or an IP literal (IPv6 without brackets).
    pub host: String,
    /// The port.
    pub port: u16,
}

impl FromStr for TargetSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (scheme, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (Some(Scheme::Https), rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (Some(Scheme::Http), rest)
        } else if text.contains("://") {
            return Err(format!("{text:?}: only http:// and https:// targets exist"));
        } else {
            (None, text)
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = split_host_port(rest)
            .ok_or_else(|| format!("{text:?} is not HOST:PORT (IPv6 as [ADDR]:PORT)"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{text:?}: {port:?} is not a port number"))?;
        let is_ip = host.parse::<IpAddr>().is_ok();
        let is_name = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_');
        if !(is_ip || is_name) {
            return Err(format!(
                "{text:?}: {host:?} is neither an IP address nor a host name"
            ));
        }
        Ok(Self {
            scheme,
            host: host.to_owned(),
            port,
        })
    }
}

/// Splits `host:port` or `[v6]:port`; a bare IPv6 address (several colons) is refused.
fn split_host_port(text: &str) -> Option<(&str, &str)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return Some((host, after.strip_prefix(':')?));
    }
    let (host, port) = text.rsplit_once(':')?;
    (!host.contains(':')).then_some((host, port))
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scheme {
            Some(Scheme::Http) => f.write_str("http://")?,
            Some(Scheme::Https) => f.write_str("https://")?,
            None => {}
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A `--resolve NAME:PORT:ADDR` override: connections to NAME:PORT go to ADDR, no lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolve {
    /// The name as used in targets.
    pub host: String,
    /// The port it applies to.
    pub port: u16,
    /// Where to connect instead.
    pub addr: IpAddr,
}

impl FromStr for Resolve {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let fail =
            || format!("{text:?} is not NAME:PORT:ADDR (e.g. staging.example.net:8080:127.0.0.1)");
        let mut parts = text.splitn(3, ':');
        let (Some(host), Some(port), Some(addr)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(fail());
        };
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        Ok(Self {
            host: host.to_owned(),
            port: port.parse().map_err(|_| fail())?,
            addr: addr.parse().map_err(|_| fail())?,
        })
    }
}

/// A target resolved at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// As given on the command line.
    pub spec: TargetSpec,
    /// The address traffic goes to (of several, the first that accepted a connection).
    pub addr: SocketAddr,
    /// Every address the name resolved to, for the start-up message.
    pub resolved: Vec<SocketAddr>,
}

impl Target {
    /// The target as written, used as its name in reports and metrics.
    pub fn label(&self) -> String {
        self.spec.to_string()
    }

    /// Whether `spec.host` is a name (not an IP literal).
    pub fn is_name(&self) -> bool {
        self.spec.host.parse::<IpAddr>().is_err()
    }
}

/// Resolves `spec` once: an IP literal as is, a name through `overrides` or the system
/// resolver. All addresses are kept; traffic goes to the first.
pub fn resolve(spec: &TargetSpec, overrides: &[Resolve]) -> anyhow::Result<Target> {
    let resolved: Vec<SocketAddr> = if let Ok(ip) = spec.host.parse::<IpAddr>() {
        vec![SocketAddr::new(ip, spec.port)]
    } else if let Some(pinned) = overrides
        .iter()
        .find(|o| o.host.eq_ignore_ascii_case(&spec.host) && o.port == spec.port)
    {
        vec![SocketAddr::new(pinned.addr, spec.port)]
    } else {
        let mut addrs: Vec<SocketAddr> = Vec::new();
        let found = (spec.host.as_str(), spec.port)
            .to_socket_addrs()
            .map_err(|err| anyhow::anyhow!("cannot resolve target {spec}: {err}"))?;
        for addr in found {
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        addrs
    };
    anyhow::ensure!(!resolved.is_empty(), "target {spec} resolved to no address");
    // A name with several addresses (localhost as ::1 and 127.0.0.1) may listen on only some:
    // traffic goes to the first that accepts a TCP connection (Prism's DNS port also answers
    // TCP), else to the first.
    let addr = if resolved.len() > 1 {
        resolved
            .iter()
            .copied()
            .find(|addr| std::net::TcpStream::connect_timeout(addr, PROBE_TIMEOUT).is_ok())
            .unwrap_or(resolved[0])
    } else {
        resolved[0]
    };
    Ok(Target {
        spec: spec.clone(),
        addr,
        resolved,
    })
}

/// Resolves every spec of one workload.
pub fn resolve_all(specs: &[TargetSpec], overrides: &[Resolve]) -> anyhow::Result<Vec<Target>> {
    anyhow::ensure!(!specs.is_empty(), "no --target given");
    specs.iter().map(|spec| resolve(spec, overrides)).collect()
}

/// How heartbeat hosts are assigned to several targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Spread {
    /// Host k goes to target k mod n.
    Modulo,
    /// Host k goes to a target picked by a hash of k and `--seed` (reproducible).
    Random,
}

impl Spread {
    /// The target index of host `host` among `targets`.
    pub fn pick(self, host: u64, targets: usize, seed: u64) -> usize {
        let targets = targets.max(1) as u64;
        let index = match self {
            Self::Modulo => host % targets,
            Self::Random => splitmix64(seed ^ splitmix64(host)) % targets,
        };
        usize::try_from(index).unwrap_or(0)
    }
}

/// The SplitMix64 finaliser: a fast, well-mixed 64-bit hash.
fn splitmix64(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_ip_literals_ipv6_and_schemes() {
        let spec: TargetSpec = "staging.example.net:8080".parse().expect("name");
        assert_eq!(
            (spec.host.as_str(), spec.port, spec.scheme),
            ("staging.example.net", 8080, None)
        );
        let spec: TargetSpec = "[::1]:5353".parse().expect("IPv6");
        assert_eq!(spec.host, "::1");
        assert_eq!(spec.to_string(), "[::1]:5353");
        let spec: TargetSpec = "https://api.example.net:443/".parse().expect("https");
        assert_eq!(spec.scheme, Some(Scheme::Https));
        assert_eq!(spec.to_string(), "https://api.example.net:443");
        for bad in [
            "::1:53",
            "host",
            "host:port",
            "ftp://h:1",
            "bad host:1",
            ":80",
        ] {
            assert!(bad.parse::<TargetSpec>().is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn resolve_overrides_pin_a_name_and_ip_literals_need_no_lookup() {
        let pin: Resolve = "staging.example.net:8080:[::1]".parse().expect("override");
        let spec: TargetSpec = "staging.example.net:8080".parse().expect("name");
        let target = resolve(&spec, &[pin]).expect("pinned");
        assert_eq!(target.addr, "[::1]:8080".parse().expect("addr"));
        let spec: TargetSpec = "127.0.0.1:9".parse().expect("ip");
        assert_eq!(resolve(&spec, &[]).expect("literal").resolved.len(), 1);
        assert!("name:80".parse::<Resolve>().is_err());
    }

    #[test]
    fn spreads_hosts_modulo_or_by_a_seeded_hash() {
        let modulo: Vec<usize> = (0..6).map(|k| Spread::Modulo.pick(k, 3, 0)).collect();
        assert_eq!(modulo, [0, 1, 2, 0, 1, 2]);
        let random: Vec<usize> = (0..1000).map(|k| Spread::Random.pick(k, 2, 7)).collect();
        let again: Vec<usize> = (0..1000).map(|k| Spread::Random.pick(k, 2, 7)).collect();
        assert_eq!(random, again, "same seed, same spread");
        let ones = random.iter().filter(|t| **t == 1).count();
        assert!((400..600).contains(&ones), "{ones} of 1000 on target 1");
        let other: Vec<usize> = (0..1000).map(|k| Spread::Random.pick(k, 2, 8)).collect();
        assert_ne!(random, other, "another seed, another spread");
    }
}
