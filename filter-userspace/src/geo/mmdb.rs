//! MaxMind DB country databases (GeoLite2/GeoIP2/DB-IP country, ip-location-db).
//!
//! The search tree is walked here rather than with `Reader::within`: `within` allocates per
//! node, panics on some corrupt trees (it slices unchecked), and reports `::/n` networks with
//! n < 96 with an underflowing length. The crate still parses the metadata and decodes the
//! (few hundred distinct) records; since its decoder also slices unchecked, those calls run
//! under `catch_unwind` so a corrupt file is an error, not a crash; and since a stack
//! overflow cannot be caught, `mmdb_data` checks every value before the crate decodes it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::panic::{AssertUnwindSafe, catch_unwind};

use filter_common::territory::TerritoryId;
use ipnet::{Ipv4Net, Ipv6Net};
use maxminddb::Reader;
use serde::Deserialize;

use super::cidr::{NetBits, snippet};
use super::csv::parse_code;
use super::mmdb_data;
use super::source::MMDB_MARKER;
use super::table::{Entry, Loaded};

/// The record shapes that carry a country: GeoIP2/GeoLite2/DB-IP (`country.iso_code`, else
/// `registered_country.iso_code`) and the flat `country_code` of ip-location-db.
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
    #[serde(borrow, default)]
    country: Option<Named<'a>>,
    #[serde(borrow, default)]
    registered_country: Option<Named<'a>>,
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

impl<'a> Record<'a> {
    fn code(&self) -> Option<&'a str> {
        let iso = |n: &Option<Named<'a>>| n.as_ref().and_then(|n| n.iso_code);
        iso(&self.country)
            .or(iso(&self.registered_country))
            .or(self.country_code)
    }
}

fn guarded<T>(f: impl FnOnce() -> Result<T, maxminddb::MaxMindDBError>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("corrupt data (the decoder failed)".to_owned()),
    }
}

/// Bounds-checked access to the search tree.
struct Tree<'a> {
    buf: &'a [u8],
    node_count: usize,
    record_size: usize,
    /// Size of the data section, which data pointers must stay within.
    data_len: usize,
}

impl Tree<'_> {
    /// The record of `node` for `bit`: a node number, `node_count` (empty) or a data pointer.
    fn child(&self, node: usize, bit: usize) -> Result<usize, String> {
        let width = self.record_size / 4; // bytes per node: two records
        let b = node
            .checked_mul(width)
            .and_then(|base| self.buf.get(base..base.checked_add(width)?))
            .ok_or_else(|| format!("search tree node {node} is outside the file"))?;
        let be = |s: &[u8]| s.iter().fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
        Ok(match (self.record_size, bit) {
            (24, _) => be(&b[bit * 3..bit * 3 + 3]),
            (28, 0) => (usize::from(b[3] >> 4) << 24) | be(&b[0..3]),
            (28, _) => (usize::from(b[3] & 0x0f) << 24) | be(&b[4..7]),
            (_, _) => be(&b[bit * 4..bit * 4 + 4]),
        })
    }

    /// Walks the subtree at `root` in address order, calling `emit(addr, len, pointer)` for
    /// every network with data. Addresses are `bits` wide. `skip(value, addr, depth)` prunes.
    fn walk(
        &self,
        root: usize,
        bits: u8,
        skip: impl Fn(usize, u128, u8) -> bool,
        mut emit: impl FnMut(u128, u8, usize) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut stack = vec![(root, 0u128, 0u8)];
        // A tree visits each node once; more visits mean shared or cyclic nodes, which could
        // otherwise make the walk exponential.
        let mut budget = self.node_count;
        while let Some((value, addr, depth)) = stack.pop() {
            if skip(value, addr, depth) || value == self.node_count {
                continue;
            }
            if value > self.node_count {
                let offset = value - self.node_count;
                if offset < 16 || offset - 16 >= self.data_len {
                    return Err(format!("data pointer {value} is outside the data section"));
                }
                emit(addr, depth, value)?;
                continue;
            }
            if depth == bits || budget == 0 {
                return Err("the search tree is deeper than an address or not a tree".into());
            }
            budget -= 1;
            let one = 1u128 << (bits - depth - 1);
            stack.push((self.child(value, 1)?, addr | one, depth + 1));
            stack.push((self.child(value, 0)?, addr, depth + 1));
        }
        Ok(())
    }
}

/// Decodes each distinct record once, by looking up an address that leads to it.
struct Codes<'r, 'b> {
    reader: &'r Reader<&'b [u8]>,
    /// The data section, which records are checked in before the crate decodes them.
    data: &'b [u8],
    node_count: usize,
    cache: HashMap<usize, Option<TerritoryId>>,
}

impl Codes<'_, '_> {
    fn get(&mut self, pointer: usize, ip: IpAddr, len: u8) -> Result<Option<TerritoryId>, String> {
        if let Some(id) = self.cache.get(&pointer) {
            return Ok(*id);
        }
        let net = format!("{ip}/{len}");
        // The crate's lookup walks the same path to the same pointer (`found` is compared
        // below), so the record it decodes is the one checked here. The walk guarantees
        // pointer >= node_count + 16.
        let record = pointer - self.node_count - 16;
        mmdb_data::check(self.data, record).map_err(|e| format!("record for {net}: {e}"))?;
        let reader = self.reader;
        let (code, found) = guarded(|| {
            let (record, found) = reader.lookup_prefix::<Record<'_>>(ip)?;
            Ok((record.code(), found))
        })
        .map_err(|e| format!("record for {net}: {e}"))?;
        // The crate walks its own way to the record; it must agree with ours.
        if found != usize::from(len) {
            return Err(format!("inconsistent search tree at {net}"));
        }
        let bad = |c: &str| {
            let c = snippet(c);
            format!("record for {net} has country code {c:?}, not upper-case ISO 3166-1 alpha-2")
        };
        let id = code
            .map(|c| parse_code(c).map_err(|_| bad(c)))
            .transpose()?;
        self.cache.insert(pointer, id);
        Ok(id)
    }
}

/// Loads every network of the database (`src` is the file's index).
pub(crate) fn load(data: &[u8], src: u32) -> Result<Loaded, String> {
    // The crate decodes the metadata after the last marker; check it first.
    if let Some(at) = data
        .windows(MMDB_MARKER.len())
        .rposition(|w| w == MMDB_MARKER)
    {
        let metadata = &data[at + MMDB_MARKER.len()..];
        mmdb_data::check(metadata, 0).map_err(|e| format!("metadata: {e}"))?;
    }
    let reader = guarded(|| Reader::from_source(data))?;
    let meta = &reader.metadata;
    let node_count = meta.node_count as usize;
    let record_size = usize::from(meta.record_size);
    if ![24, 28, 32].contains(&record_size) {
        return Err(format!("unsupported record size {record_size}"));
    }
    let tree_len = node_count * record_size / 4;
    let data_len = data
        .len()
        .checked_sub(tree_len + 16)
        .ok_or("the search tree is larger than the file")?;
    let tree = Tree {
        buf: data,
        node_count,
        record_size,
        data_len,
    };
    let mut codes = Codes {
        reader: &reader,
        data: &data[tree_len + 16..],
        node_count,
        cache: HashMap::new(),
    };
    let mut out = Loaded::default();

    let ipv4_root = match meta.ip_version {
        4 => 0,
        // IPv4 lives at ::/96 of an IPv6 tree; the walk may end early in an empty or data node.
        6 => {
            let mut node = 0;
            let mut depth = 0;
            while depth < 96 && node < node_count {
                node = tree.child(node, 0)?;
                depth += 1;
            }
            if depth < 96 && node > node_count {
                return Err(format!("a single record covers all of IPv4 (::/{depth})"));
            }
            node
        }
        v => return Err(format!("unsupported ip_version {v}")),
    };

    let mut v4 = |addr: u128, len: u8, ptr: usize| {
        out.rows += 1;
        let a = addr as u32;
        match codes.get(ptr, IpAddr::V4(Ipv4Addr::from(a)), len)? {
            Some(id) => out.v4.push(Entry {
                prefix: Ipv4Net::network_of(a, len),
                id,
                src,
                line: 0,
            }),
            None => out.skipped += 1,
        }
        Ok(())
    };
    tree.walk(ipv4_root, 32, |_, _, _| false, &mut v4)?;
    if meta.ip_version == 4 {
        return Ok(out);
    }

    const MAPPED: u128 = 0xffff << 32;
    let skip = |value: usize, addr: u128, depth: u8| {
        // The IPv4 subtree is done above; IPv4-mapped addresses are never an IPv6 packet's
        // source; and other paths to the IPv4 root (2001::/32 Teredo, 2002::/16 6to4 in
        // MaxMind's databases) are aliases that would count IPv4 again. Genuine records in
        // those ranges are kept.
        (depth >= 96 && (addr >> 32 == 0 || addr >> 32 == MAPPED >> 32))
            || (value == ipv4_root && ipv4_root < node_count && (addr, depth) != (0, 96))
    };
    let mut v6 = |addr: u128, len: u8, ptr: usize| {
        out.rows += 1;
        match codes.get(ptr, IpAddr::V6(Ipv6Addr::from(addr)), len)? {
            Some(id) => out.v6.push(Entry {
                prefix: Ipv6Net::network_of(addr, len),
                id,
                src,
                line: 0,
            }),
            None => out.skipped += 1,
        }
        Ok(())
    };
    tree.walk(0, 128, skip, &mut v6)?;
    Ok(out)
}

#[cfg(test)]
#[path = "mmdb_tests.rs"]
mod tests;
