use super::*;

fn v4(s: &str) -> u32 {
    s.parse::<Ipv4Addr>().map(u32::from).unwrap()
}

fn v6(s: &str) -> u128 {
    s.parse::<Ipv6Addr>().map(u128::from).unwrap()
}

fn strs<T: ToString>(v: &[T]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

#[test]
fn awkward_v4_ranges() {
    assert_eq!(
        strs(&range_to_cidrs_v4(v4("10.1.2.3"), v4("10.1.2.3"))),
        ["10.1.2.3/32"]
    );
    assert_eq!(
        strs(&range_to_cidrs_v4(v4("10.0.0.0"), v4("10.255.255.255"))),
        ["10.0.0.0/8"]
    );
    assert_eq!(
        strs(&range_to_cidrs_v4(v4("10.0.0.255"), v4("10.0.1.0"))),
        ["10.0.0.255/32", "10.0.1.0/32"]
    );
    assert_eq!(strs(&range_to_cidrs_v4(0, u32::MAX)), ["0.0.0.0/0"]);
    assert_eq!(
        strs(&range_to_cidrs_v4(v4("255.255.255.0"), u32::MAX)),
        ["255.255.255.0/24"]
    );
    assert_eq!(
        strs(&range_to_cidrs_v4(v4("255.255.255.254"), u32::MAX)),
        ["255.255.255.254/31"]
    );
    assert!(range_to_cidrs_v4(5, 4).is_empty());

    // 0.0.0.1-255.255.255.254: one block of every length /1../32 on each side but /1 itself.
    let all = range_to_cidrs_v4(1, u32::MAX - 1);
    assert_eq!(all.len(), 62);
    assert_eq!(all[0].to_string(), "0.0.0.1/32");
    assert_eq!(all[30].to_string(), "64.0.0.0/2");
    assert_eq!(all[31].to_string(), "128.0.0.0/2");
    assert_eq!(all[61].to_string(), "255.255.255.254/32");
    check_cover_v4(1, u32::MAX - 1, &all);
}

#[test]
fn awkward_v6_ranges() {
    assert_eq!(
        strs(&range_to_cidrs_v6(v6("2001:db8::1"), v6("2001:db8::1"))),
        ["2001:db8::1/128"]
    );
    assert_eq!(
        strs(&range_to_cidrs_v6(
            v6("2001:db8::"),
            v6("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")
        )),
        ["2001:db8::/32"]
    );
    assert_eq!(
        strs(&range_to_cidrs_v6(
            v6("2001:db8::ffff"),
            v6("2001:db8::1:0")
        )),
        ["2001:db8::ffff/128", "2001:db8::1:0/128"]
    );
    assert_eq!(strs(&range_to_cidrs_v6(0, u128::MAX)), ["::/0"]);
    assert_eq!(
        strs(&range_to_cidrs_v6(v6("ffff::"), u128::MAX)),
        ["ffff::/16"]
    );
    let all = range_to_cidrs_v6(1, u128::MAX - 1);
    assert_eq!(all.len(), 254);
    assert_eq!(
        all[253].to_string(),
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/128"
    );
    check_cover_v6(1, u128::MAX - 1, &all);
}

macro_rules! checker {
    ($fn:ident, $p:ty, $int:ty) => {
        /// Disjoint, sorted, exact cover, and no two mergeable siblings.
        fn $fn(start: $int, end: $int, got: &[$p]) {
            assert!(!got.is_empty());
            assert_eq!(got[0].first(), start, "{got:?}");
            assert_eq!(got[got.len() - 1].last(), end, "{got:?}");
            for p in got {
                assert_eq!(
                    <$p>::from_bits(p.first(), p.prefix_len()),
                    Some(*p),
                    "host bits in {p}"
                );
            }
            for w in got.windows(2) {
                let (a, b) = (w[0], w[1]);
                assert_eq!(
                    a.last().checked_add(1),
                    Some(b.first()),
                    "gap or overlap {a} {b}"
                );
                let left_child =
                    a.prefix_len() > 0 && a.first() & (1 << (<$p>::MAX_LEN - a.prefix_len())) == 0;
                assert!(
                    !(a.prefix_len() == b.prefix_len() && left_child),
                    "mergeable siblings {a} {b}"
                );
            }
        }
    };
}
checker!(check_cover_v4, Ipv4Net, u32);
checker!(check_cover_v6, Ipv6Net, u128);

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_ranges_are_covered_minimally() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for i in 0..1000 {
        // Mix wide and narrow spans so both long and short splits occur.
        let a = rng.next() as u32;
        let b = if i % 2 == 0 {
            rng.next() as u32
        } else {
            a.saturating_add(rng.next() as u32 % 5000)
        };
        let (s, e) = (a.min(b), a.max(b));
        check_cover_v4(s, e, &range_to_cidrs_v4(s, e));

        let a = (u128::from(rng.next()) << 64) | u128::from(rng.next());
        let b = if i % 2 == 0 {
            (u128::from(rng.next()) << 64) | u128::from(rng.next())
        } else {
            a.saturating_add(u128::from(rng.next() % 100_000))
        };
        let (s, e) = (a.min(b), a.max(b));
        check_cover_v6(s, e, &range_to_cidrs_v6(s, e));
    }
}

#[test]
fn prefix_parse_and_display() {
    let p = Ipv4Net::parse_strict("10.0.0.0/8").unwrap();
    assert_eq!(p, Ipv4Net::from_bits(0x0a00_0000, 8).unwrap());
    assert_eq!(p.to_string(), "10.0.0.0/8");
    assert!(p.contains(&Ipv4Addr::from(v4("10.255.0.1"))));
    assert!(!p.contains(&Ipv4Addr::from(v4("11.0.0.0"))));
    assert_eq!(p.last(), v4("10.255.255.255"));
    let z = Ipv4Net::parse_strict("0.0.0.0/0").unwrap();
    assert!(z.contains(&Ipv4Addr::BROADCAST) && z.last() == u32::MAX);

    let p = Ipv6Net::parse_strict("2001:DB8::/32").unwrap();
    assert_eq!(p.to_string(), "2001:db8::/32");
    assert!(p.contains(&Ipv6Addr::from(v6("2001:db8:1::5"))));
    assert!(!p.contains(&Ipv6Addr::from(v6("2001:db9::"))));
    assert_eq!(Ipv6Net::parse_strict("::/0").unwrap().last(), u128::MAX);

    for bad in [
        "10.0.0.0",
        "10.0.0.0/",
        "10.0.0.0/33",
        "10.0.0.0/+8",
        "10.0.0.0/-1",
        "10.0.0/8",
        "10.0.0.0/8 ",
        "x/8",
        "10.0.0.0/8/8",
        "10.0.0.0/0008",
        "::/8",
    ] {
        assert!(Ipv4Net::parse_strict(bad).is_err(), "{bad:?} accepted");
    }
    for bad in [
        "2001:db8::/129",
        "2001:db8::",
        "1.2.3.0/24",
        "2001:db8:::/32",
    ] {
        assert!(Ipv6Net::parse_strict(bad).is_err(), "{bad:?} accepted");
    }
    let err = Ipv4Net::parse_strict("10.0.0.1/8").unwrap_err();
    assert_eq!(
        err.to_string(),
        "host bits are set in 10.0.0.1/8 (the network is 10.0.0.0/8)"
    );
    let err = Ipv6Net::parse_strict("2001:db8::1/64").unwrap_err();
    assert!(err.to_string().contains("2001:db8::/64"), "{err}");
}

#[test]
fn snippets_are_bounded() {
    let long = "é".repeat(1000);
    assert_eq!(snippet(&long).chars().count(), 61);
    assert_eq!(snippet("short"), "short");
}
