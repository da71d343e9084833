//! The territory table as the model sees it: the geo files recorded by `geo load`,
//! reparsed, since the kernel's flattened table keeps territories but not prefixes. Says
//! when the files changed after the load, so that a difference from the kernel has a
//! likely cause.

use std::net::IpAddr;

use filter_common::TerritoryId;
use jiff::Timestamp;

use crate::{
    change::short_sha,
    geo::{self, Format, GeoTable},
    state::GeoRecord,
};

/// Where the model's territory table came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableSource {
    /// No `geo load` recorded: every source is "unknown".
    None,
    /// The recorded files, reparsed.
    Files,
    /// The files could not be reparsed (the reason); the model uses the territory the
    /// kernel's table gives the source, without a prefix.
    KernelOnly(String),
}

/// The model's table and what the operator should know about it.
pub struct GeoContext {
    pub table: GeoTable,
    pub source: TableSource,
    /// Files changed since the load, prefix counts that moved, ...
    pub warnings: Vec<String>,
    /// The load that put the table in force, as the state records it: which files, their
    /// digests, when.
    pub record: Option<GeoRecord>,
}

/// A file's modification time, if it is clearly later than `loaded`: the load time is
/// recorded rounded to the second, so a second of slack.
fn modified_after(path: &std::path::Path, loaded: Timestamp) -> Option<Timestamp> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
    let at = Timestamp::try_from(modified).ok()?;
    let slack = jiff::SignedDuration::from_secs(1);
    (at > loaded.checked_add(slack).ok()?).then(|| crate::clock::rounded(at))
}

/// The table for `record`; `kernel_territory` is the kernel's answer for `src`, used when
/// the files cannot be read.
pub fn context(
    record: Option<&GeoRecord>,
    src: IpAddr,
    kernel_territory: Option<TerritoryId>,
) -> GeoContext {
    let Some(record) = record else {
        return GeoContext {
            table: GeoTable::default(),
            source: TableSource::None,
            warnings: Vec::new(),
            record: None,
        };
    };
    let mut warnings = changed_since(record);
    // Without recorded digests, the modification times are all there is to go by.
    let undigested: &[std::path::PathBuf] = match record.sources.is_empty() {
        true => &record.files,
        false => &[],
    };
    for file in undigested {
        if let Some(at) = modified_after(file, record.loaded) {
            warnings.push(format!(
                "{} was modified at {at}, after the table was loaded at {}: the kernel may hold \
                 older data (reload with `geofence geo load`)",
                file.display(),
                record.loaded
            ));
        }
    }
    let parsed = record
        .format
        .parse::<Format>()
        .map_err(|e| format!("the state records an unknown format: {e}"))
        .and_then(|format| {
            let options = geo::LoadOptions {
                format,
                territory: record.territory.as_deref(),
                locate_by: record.locate_by,
            };
            geo::load_files_with(&record.files, &options).map_err(|e| e.to_string())
        });
    match parsed {
        Ok(table) => {
            if (table.v4.len(), table.v6.len()) != (record.prefixes_v4, record.prefixes_v6) {
                warnings.push(format!(
                    "the files now hold {} IPv4 + {} IPv6 prefixes; the load recorded {} + {}",
                    table.v4.len(),
                    table.v6.len(),
                    record.prefixes_v4,
                    record.prefixes_v6
                ));
            }
            GeoContext {
                table,
                source: TableSource::Files,
                warnings,
                record: Some(record.clone()),
            }
        }
        Err(reason) => GeoContext {
            table: single_entry(src, kernel_territory),
            source: TableSource::KernelOnly(reason),
            warnings,
            record: Some(record.clone()),
        },
    }
}

/// A warning for each recorded file whose contents are not what was loaded: another
/// SHA-256 now, or unreadable.
fn changed_since(record: &GeoRecord) -> Vec<String> {
    let mut warnings = Vec::new();
    for s in &record.sources {
        let (file, was) = (s.file.display(), short_sha(&s.sha256));
        match crate::audit::file_digest(&s.file) {
            Ok((sha256, _)) if sha256 == s.sha256 => {}
            Ok((sha256, _)) => warnings.push(format!(
                "{file} has sha256 {}, not the sha256 {was} loaded at {}: the kernel holds the \
                 table as loaded, the walk reads the file as it is now (reload with \
                 `geofence geo load`)",
                short_sha(&sha256),
                record.loaded
            )),
            Err(e) => warnings.push(format!(
                "{file} cannot be read now ({e:#}); the table was loaded from it (sha256 \
                 {was}) at {}",
                record.loaded
            )),
        }
    }
    warnings
}

/// A table that holds only the kernel's answer for `src`.
fn single_entry(src: IpAddr, territory: Option<TerritoryId>) -> GeoTable {
    let mut table = GeoTable::default();
    let Some(id) = territory else {
        return table;
    };
    match src {
        IpAddr::V4(v4) => table.v4.push((v4.into(), id)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => table.v4.push((v4.into(), id)),
            None => table.v6.push((v6.into(), id)),
        },
    }
    table
}
