//! Small tables made by hand, with the answers worked out by hand.

use filter_common::territory::territory_id;
use ipnet::{Ipv4Net, Ipv6Net};

use super::*;

pub(super) fn id(cc: &str) -> TerritoryId {
    match cc {
        "--" => TERRITORY_UNKNOWN,
        cc => territory_id(cc.as_bytes().try_into().expect("two letters")).expect("code"),
    }
}

/// A table from `prefix CC` pairs, IPv4 and IPv6 mixed.
fn table(entries: &[(&str, &str)]) -> GeoTable {
    let mut t = GeoTable::default();
    for (prefix, cc) in entries {
        if prefix.contains(':') {
            t.v6.push((Ipv6Net::parse_strict(prefix).expect("v6 prefix"), id(cc)));
        } else {
            t.v4.push((Ipv4Net::parse_strict(prefix).expect("v4 prefix"), id(cc)));
        }
    }
    t.v4.sort_by_key(|e| e.0);
    t.v6.sort_by_key(|e| e.0);
    t
}

fn change(old: &[(&str, &str)], new: &[(&str, &str)], scopes: &[Scope]) -> Change {
    let d = diff(
        &Ranges::of_table(&table(old)),
        &Ranges::of_table(&table(new)),
    );
    Change::of(&d, scopes)
}

fn v4(addr: &str) -> u128 {
    u128::from(u32::from(addr.parse::<std::net::Ipv4Addr>().expect("v4")))
}

fn count(addresses: u128, prefixes: u64) -> Count {
    Count {
        addresses,
        prefixes,
    }
}

/// `(from, to, addresses, prefixes)` of each move, largest first.
fn pairs(m: &FamilyMoves) -> Vec<(String, String, u128, u64)> {
    let name = |t| match t {
        TERRITORY_UNKNOWN => "--".to_string(),
        t => crate::territory::Territory::from_id(t).to_string(),
    };
    m.moves
        .iter()
        .map(|mv| {
            let c = mv.count;
            (name(mv.from), name(mv.to), c.addresses, c.prefixes)
        })
        .collect()
}

fn s(from: &str, to: &str, addresses: u128, prefixes: u64) -> (String, String, u128, u64) {
    (from.into(), to.into(), addresses, prefixes)
}

#[test]
fn a_more_specific_prefix_moves_its_addresses() {
    let c = change(
        &[("10.0.0.0/8", "HK")],
        &[("10.0.0.0/8", "HK"), ("10.1.0.0/16", "CN")],
        &[],
    );
    assert_eq!(pairs(&c.v4), [s("HK", "CN", 65_536, 1)]);
    assert_eq!(c.v4.total, count(65_536, 1));
    assert!(c.v6.total.is_zero() && c.v6.moves.is_empty());
    let d = diff(
        &Ranges::of_table(&table(&[("10.0.0.0/8", "HK")])),
        &Ranges::of_table(&table(&[("10.0.0.0/8", "HK"), ("10.1.0.0/16", "CN")])),
    );
    let seg = Segment {
        first: v4("10.1.0.0"),
        last: v4("10.1.255.255"),
        from: id("HK"),
        to: id("CN"),
    };
    assert_eq!(d.v4, [seg]);
}

#[test]
fn addresses_enter_and_leave_the_table() {
    let c = change(
        &[("192.0.2.0/24", "XA")],
        &[("192.0.2.0/25", "XA"), ("198.51.100.0/24", "XB")],
        &[],
    );
    assert_eq!(pairs(&c.v4), [s("--", "XB", 256, 1), s("XA", "--", 128, 1)]);
    assert_eq!(c.v4.total, count(384, 2));
}

#[test]
fn prefixes_are_the_fewest_that_cover_the_addresses() {
    // 10.0.0.1-10.0.0.3: a /32 and a /31; the two entries are one run.
    let c = change(&[], &[("10.0.0.1/32", "CN"), ("10.0.0.2/31", "CN")], &[]);
    assert_eq!(pairs(&c.v4), [s("--", "CN", 3, 2)]);
    // Four /24s that move from three territories to one: per pair as they were, but the
    // total is one /22.
    let c = change(
        &[
            ("10.0.0.0/24", "HK"),
            ("10.0.1.0/24", "TW"),
            ("10.0.2.0/24", "HK"),
        ],
        &[("10.0.0.0/22", "CN")],
        &[],
    );
    assert_eq!(
        pairs(&c.v4),
        [
            s("HK", "CN", 512, 2),
            s("--", "CN", 256, 1),
            s("TW", "CN", 256, 1),
        ]
    );
    assert_eq!(c.v4.total, count(1024, 1));
}

#[test]
fn ipv6_sizes_read_as_prefixes() {
    let c = change(
        &[("2001:db8::/32", "US")],
        &[("2001:db8::/33", "US"), ("2001:db8:8000::/33", "CA")],
        &[],
    );
    assert_eq!(pairs(&c.v6), [s("US", "CA", 1 << 95, 1)]);
    assert_eq!(count_text(Family::V6, &c.v6.total), "IPv6 /33 in 1 prefix");
    assert_eq!(v6_size(1 << 96), "/32");
    assert_eq!(v6_size(3 << 95), "1.5 × /32");
    assert_eq!(v6_size(1), "/128");
    assert_eq!(v6_size(7), "1.75 × /126");
    assert_eq!(v6_size(0), "nothing");
    // The whole space saturates the count; it is still the whole space.
    let c = change(&[], &[("::/1", "XA"), ("8000::/1", "XA")], &[]);
    assert_eq!(c.v6.total, count(u128::MAX, 1));
    assert_eq!(v6_size(c.v6.total.addresses), "/0");
}

#[test]
fn identical_tables_and_extremes() {
    let t = [("0.0.0.0/1", "XA"), ("255.255.255.255/32", "XB")];
    assert!(change(&t, &t, &[]).is_empty());
    let c = change(&t, &[("0.0.0.0/1", "XA")], &[]);
    assert_eq!(pairs(&c.v4), [s("XB", "--", 1, 1)]);
    let c = change(&[], &[("128.0.0.0/1", "XC")], &[]);
    assert_eq!(pairs(&c.v4), [s("--", "XC", 1 << 31, 1)]);
}

fn rule(order: &str, territories: &[&str], dry_run: bool) -> RuleRef {
    RuleRef {
        order: order.into(),
        dry_run,
        territories: territories.iter().map(|t| id(t)).collect(),
    }
}

fn meeting(name: &str, rules: Vec<RuleRef>, exempt_v4: &[(&str, &str)]) -> Scope {
    Scope {
        name: name.into(),
        kind: ScopeKind::Meeting,
        rules,
        exempt_v4: exempt_v4.iter().map(|(a, b)| (v4(a), v4(b))).collect(),
        exempt_v6: vec![],
    }
}

/// HK → CN, CN → US and XA → XB, one /24 each.
fn three_moves(scopes: &[Scope]) -> Change {
    change(
        &[
            ("10.0.0.0/24", "HK"),
            ("10.0.1.0/24", "CN"),
            ("10.0.2.0/24", "XA"),
        ],
        &[
            ("10.0.0.0/24", "CN"),
            ("10.0.1.0/24", "US"),
            ("10.0.2.0/24", "XB"),
        ],
        scopes,
    )
}

#[test]
fn rules_see_what_moves_into_and_out_of_what_they_block() {
    let town_hall = meeting(
        "town-hall",
        vec![
            rule("ORD-1", &["CN"], false),
            rule("ORD-2", &["XA", "XB"], true),
        ],
        // An allow exception inside 10.0.0.0/24, which the table does not decide.
        &[("10.0.0.7", "10.0.0.7")],
    );
    let standup = meeting("standup", vec![rule("ORD-3", &["US"], false)], &[]);
    let prefixes_only = meeting("board", vec![rule("ORD-4", &[], false)], &[]);
    let c = three_moves(&[town_hall, standup, prefixes_only]);
    assert_eq!(
        c.scopes.len(),
        2,
        "a meeting without territory rules is left out"
    );
    let th = &c.scopes[0];
    // 10.0.0.0-6 (a /30, a /31, a /32) and 10.0.0.8-255 (/29 to /25).
    assert_eq!(th.effect.blocked_v4, count(255, 8));
    assert_eq!(th.effect.passing_v4, count(256, 1));
    assert!(th.effect.blocked_v6.is_zero());
    assert_eq!(th.rules[0].effect, th.effect, "ORD-1 accounts for both");
    assert!(
        th.rules[1].effect.is_none(),
        "XA → XB stays blocked by ORD-2"
    );
    let su = &c.scopes[1];
    assert_eq!(su.name, "standup");
    assert_eq!(su.effect.blocked_v4, count(256, 1));
    assert!(su.effect.passing_v4.is_zero());
}

#[test]
fn two_rules_on_one_territory_count_once_for_the_meeting() {
    let m = meeting(
        "town-hall",
        vec![
            rule("ORD-5", &["CN"], false),
            rule("ORD-6", &["CN", "XB"], true),
        ],
        &[],
    );
    let c = three_moves(&[m]);
    let th = &c.scopes[0];
    // HK → CN is newly blocked by both; CN → US newly passes from both; XA → XB is newly
    // blocked by ORD-6 alone.
    assert_eq!(th.effect.blocked_v4, count(512, 2));
    assert_eq!(th.rules[0].effect.blocked_v4, count(256, 1));
    assert_eq!(th.rules[1].effect.blocked_v4, count(512, 2));
    assert_eq!(th.rules[1].effect.passing_v4, count(256, 1));
    assert_eq!(th.effect.passing_v4, count(256, 1));
}

#[test]
fn exemptions_spanning_segments_are_subtracted_from_each() {
    // 10.0.0.128-10.0.1.127 is exempt; HK → CN and CN → US both lose half.
    let m = meeting(
        "town-hall",
        vec![rule("ORD-1", &["CN"], false)],
        &[("10.0.1.0", "10.0.1.127"), ("10.0.0.128", "10.0.0.255")],
    );
    let c = three_moves(&[m]);
    assert_eq!(c.scopes[0].effect.blocked_v4, count(128, 1));
    assert_eq!(c.scopes[0].effect.passing_v4, count(128, 1));
}

#[test]
fn the_screen_names_pairs_sizes_and_rules() {
    let m = meeting("town-hall", vec![rule("ORD-1", &["CN"], false)], &[]);
    let mut c = change(
        &[("10.0.0.0/24", "HK"), ("2001:db8::/32", "US")],
        &[
            ("10.0.0.0/24", "CN"),
            ("10.0.1.0/24", "XA"),
            ("2001:db8::/33", "US"),
        ],
        &[m],
    );
    let screen = text(&c, 10);
    for line in [
        "IPv4: 512 addresses in 1 prefix change territory",
        "  HK → CN  256 addresses in 1 prefix",
        "  -- → XA  256 addresses in 1 prefix",
        "IPv6: /33 in 1 prefix change territory",
        "  US → --  /33 in 1 prefix",
        "(-- is outside the table: territory `unknown` to rules)",
        "  town-hall: newly blocked: 256 IPv4 addresses in 1 prefix",
        "    order ORD-1 (CN, enforce): newly blocked: 256 IPv4 addresses in 1 prefix",
    ] {
        assert!(
            screen.lines().any(|l| l == line),
            "{line:?} not in\n{screen}"
        );
    }
    let shorter = text(&c, 1);
    assert!(
        shorter.contains("and 1 more pair (--json lists every pair)"),
        "{shorter}"
    );
    let line = one_line(&c);
    assert!(
        line.starts_with(
            "512 IPv4 addresses in 1 prefix and IPv6 /33 in 1 prefix change territory"
        ) && line.contains("town-hall (ORD-1): newly blocked: 256 IPv4 addresses"),
        "{line}"
    );
    let v = json(&c);
    assert_eq!(v["ipv4"]["addresses"], 512);
    // Equal sizes go by territory id: outside the table first.
    assert_eq!(v["ipv4"]["moves"][0]["from"], "unknown");
    assert_eq!(v["ipv4"]["moves"][1]["from"], "HK");
    assert_eq!(v["ipv6"]["addresses"], (1u128 << 95).to_string());
    assert_eq!(v["ipv6"]["slash64s"], 2f64.powi(31));
    assert_eq!(v["meetings"][0]["meeting"], "town-hall");
    assert_eq!(
        v["meetings"][0]["rules"][0]["newly_blocked"]["ipv4"]["addresses"],
        256
    );
    c.scopes.clear();
    assert!(text(&c, 10).ends_with("No territory rule is in force.\n"));
}
