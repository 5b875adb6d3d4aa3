//! Which hostnames can be registered under the zone: a name must fit in a DNS name once the
//! zone is appended (255 octets on the wire), and the zone's own names — its in-zone
//! nameservers, the SOA mailbox label and `dns.reserved_names` — belong to no host.

use std::collections::BTreeSet;

use hickory_proto::rr::Name;

use crate::core::protocol::Hostname;

/// Longest DNS name on the wire (RFC 1035 §3.1), root label included.
const MAX_WIRE_NAME: usize = 255;

/// Why a hostname cannot be registered under this zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameRefused {
    /// With the zone appended the name would exceed 255 octets, so it could never resolve.
    #[error(
        "hostname is {len} characters long; under the zone {zone} the limit is {max} \
         (a DNS name is at most 255 octets)"
    )]
    TooLong {
        /// The hostname's length.
        len: usize,
        /// The longest hostname the zone leaves room for.
        max: usize,
        /// The zone.
        zone: String,
    },
    /// The name is one of the zone's own.
    #[error("hostname '{name}' is reserved: {why}")]
    Reserved {
        /// The refused name.
        name: String,
        /// Whose name it is.
        why: &'static str,
    },
}

/// The registrable names of one zone.
#[derive(Debug, Clone)]
pub struct NamePolicy {
    /// Longest registrable hostname, in characters (one octet each: names are ASCII).
    max_len: usize,
    /// The zone, for messages.
    zone: String,
    /// Reserved hostnames (relative to the zone, lowercase) and why.
    reserved: Vec<(String, &'static str)>,
}

impl NamePolicy {
    /// The policy of the zone `origin` with these in-zone nameservers and SOA mailbox, plus
    /// the operator's `extra` reserved names (relative to the zone).
    pub fn new(origin: &Name, nameservers: &[Name], hostmaster: &Name, extra: &[String]) -> Self {
        // A hostname of n characters takes n + 1 octets on the wire (its labels' length
        // bytes replace the dots, plus one); the zone's wire form already has the root byte.
        let zone_wire = origin.len() + 1;
        let max_len = MAX_WIRE_NAME.saturating_sub(zone_wire + 1);
        let mut reserved: BTreeSet<(String, &'static str)> = BTreeSet::new();
        for ns in nameservers {
            if let Some(name) = relative(ns, origin) {
                reserved.insert((name, "it names one of the zone's nameservers"));
            }
        }
        if let Some(name) = hostmaster
            .iter()
            .next()
            .map(|label| String::from_utf8_lossy(label).to_ascii_lowercase())
            && origin.zone_of(hostmaster)
        {
            reserved.insert((name, "it is the zone's SOA contact mailbox"));
        }
        for name in extra {
            let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
            if !name.is_empty() {
                reserved.insert((name, "it is reserved by the operator (dns.reserved_names)"));
            }
        }
        Self {
            max_len,
            zone: origin.to_ascii(),
            reserved: reserved.into_iter().collect(),
        }
    }

    /// Longest hostname the zone leaves room for.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Whether `hostname` may be registered.
    pub fn check(&self, hostname: &Hostname) -> Result<(), NameRefused> {
        let len = hostname.as_str().len();
        if len > self.max_len {
            return Err(NameRefused::TooLong {
                len,
                max: self.max_len,
                zone: self.zone.clone(),
            });
        }
        match self
            .reserved
            .iter()
            .find(|(name, _)| name == hostname.as_str())
        {
            Some((name, why)) => Err(NameRefused::Reserved {
                name: name.clone(),
                why,
            }),
            None => Ok(()),
        }
    }
}

/// `name` relative to `origin`, lowercase, when it is strictly inside the zone.
fn relative(name: &Name, origin: &Name) -> Option<String> {
    if !origin.zone_of(name) || name.num_labels() <= origin.num_labels() {
        return None;
    }
    let inside = usize::from(name.num_labels() - origin.num_labels());
    let labels: Vec<String> = name
        .iter()
        .take(inside)
        .map(|label| String::from_utf8_lossy(label).to_ascii_lowercase())
        .collect();
    Some(labels.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).expect("name")
    }

    fn policy() -> NamePolicy {
        let origin = name("managed.prism.local.");
        NamePolicy::new(
            &origin,
            &[name("ns1.managed.prism.local."), name("ns.example.net.")],
            &name("hostmaster.managed.prism.local."),
            &["www".into()],
        )
    }

    #[test]
    fn the_longest_name_that_fits_under_the_zone_is_accepted_and_one_more_is_not() {
        let policy = policy();
        assert_eq!(policy.max_len(), 233);
        let fits = vec!["a".repeat(63); 3].join(".") + "." + &"b".repeat(41);
        assert_eq!(fits.len(), 233);
        assert!(
            policy
                .check(&Hostname::parse(&fits).expect("valid"))
                .is_ok()
        );
        let one_more = format!("{fits}c");
        let refused = policy.check(&Hostname::parse(&one_more).expect("valid"));
        assert!(matches!(
            refused,
            Err(NameRefused::TooLong {
                len: 234,
                max: 233,
                ..
            })
        ));
        // And the wire form of the longest accepted name is exactly 255 octets.
        let wire = Name::from_ascii(format!("{fits}.managed.prism.local.")).expect("fits");
        assert_eq!(wire.len() + 1, 255);
    }

    #[test]
    fn the_zones_own_names_are_reserved() {
        let policy = policy();
        for reserved in ["ns1", "hostmaster", "www", "WWW"] {
            let hostname = Hostname::parse(reserved).expect("valid");
            assert!(
                matches!(policy.check(&hostname), Err(NameRefused::Reserved { .. })),
                "{reserved} must be reserved"
            );
        }
        for free in ["ns", "ns2", "web-01", "ns1.eu"] {
            assert!(
                policy.check(&Hostname::parse(free).expect("valid")).is_ok(),
                "{free}"
            );
        }
    }
}
