//! Where the fleet keeps things in etcd (docs/fleet.md, "Key layout"). One prefix, so that
//! etcd roles can grant a relay read access to the policy and write access to its own keys.

/// The current policy version: a [`super::document::PolicyDoc`] as JSON. Compare-and-swap
/// on its mod revision is what makes two operators' concurrent changes exclusive.
pub const POLICY: &str = "/geofence/policy";
/// Every version ever written, zero-padded so that a range read lists them in order.
pub const VERSIONS: &str = "/geofence/versions/";
/// One directory per relay: `status` (no lease) and `alive` (bound to the relay's lease).
pub const RELAYS: &str = "/geofence/relays/";

pub fn version(n: u64) -> String {
    format!("{VERSIONS}{n:020}")
}

pub fn status(relay: &str) -> String {
    format!("{RELAYS}{relay}/status")
}

pub fn alive(relay: &str) -> String {
    format!("{RELAYS}{relay}/alive")
}

/// The relay and key kind (`status`, `alive`) of a key under [`RELAYS`].
pub fn parse_relay_key(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix(RELAYS)?.rsplit_once('/')
}

/// A relay name that is safe as a path segment and an etcd user name.
pub fn check_relay_name(name: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok) {
        return Err(format!(
            "relay name `{name}`: use 1 to 64 letters, digits, `.`, `_` or `-`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        assert_eq!(version(7), "/geofence/versions/00000000000000000007");
        assert_eq!(
            parse_relay_key(&status("edge-1")),
            Some(("edge-1", "status"))
        );
        assert_eq!(parse_relay_key("/geofence/policy"), None);
        assert!(check_relay_name("edge-1.fra").is_ok());
        assert!(check_relay_name("a/b").is_err());
    }
}
