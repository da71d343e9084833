//! Loading several files (in parallel: each is parsed on its own) and merging them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::error::Origin;
use super::table::{self, Loaded};
use super::{Format, GeoError, GeoTable, SourceSummary, cidr, csv, list, mmdb, source};

fn load_one(
    path: &Path,
    src: usize,
    format: Format,
    territory: Option<&str>,
) -> Result<(SourceSummary, Loaded), GeoError> {
    parse_input(path, source::read(path)?, src, format, territory)
}

/// Parses one file's contents, already read and decompressed; `path` names it in errors.
fn parse_input(
    path: &Path,
    input: source::Input,
    src: usize,
    format: Format,
    territory: Option<&str>,
) -> Result<(SourceSummary, Loaded), GeoError> {
    let no_entries = |skipped| GeoError::NoEntries {
        path: path.to_owned(),
        skipped,
    };
    let format = match format {
        Format::Auto => source::detect(&input.data).ok_or_else(|| no_entries(0))?,
        f => f,
    };
    let src = u32::try_from(src).unwrap_or(u32::MAX);
    let at_line = |(line, reason)| GeoError::Entry {
        at: Origin {
            path: path.to_owned(),
            line: Some(line),
        },
        reason,
    };
    if let (Some(_), Format::Csv | Format::Mmdb) = (territory, format) {
        return Err(GeoError::TerritoryNotAllowed {
            path: path.to_owned(),
            format,
        });
    }
    let loaded = match format {
        Format::Csv => csv::load(&input.data, src).map_err(at_line)?,
        Format::Mmdb => mmdb::load(&input.data, src).map_err(|reason| GeoError::Mmdb {
            path: path.to_owned(),
            reason,
        })?,
        Format::Cidr | Format::Auto => {
            let code = territory.ok_or_else(|| GeoError::NeedsTerritory {
                path: path.to_owned(),
            })?;
            let id = csv::parse_code(code).map_err(|_| GeoError::BadTerritory {
                path: path.to_owned(),
                code: cidr::snippet(code),
            })?;
            list::load(&input.data, id, src).map_err(at_line)?
        }
    };
    if loaded.v4.is_empty() && loaded.v6.is_empty() {
        return Err(no_entries(loaded.skipped));
    }
    log::debug!(
        "{}: {format}, {} rows, {} + {} prefixes",
        path.display(),
        loaded.rows,
        loaded.v4.len(),
        loaded.v6.len()
    );
    let summary = SourceSummary {
        path: path.to_owned(),
        format,
        gzip: input.gzip,
        bytes: input.bytes,
        rows: loaded.rows,
        skipped: loaded.skipped,
        overlaps: loaded.overlaps,
        v4_prefixes: loaded.v4.len(),
        v6_prefixes: loaded.v6.len(),
    };
    Ok((summary, loaded))
}

type Outcome = Result<(SourceSummary, Loaded), GeoError>;

/// Runs `load_one` for every path, on up to one thread per CPU, results in path order.
fn load_all(paths: &[PathBuf], format: Format, territory: Option<&str>) -> Vec<Outcome> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(paths.len());
    if workers <= 1 {
        let each = paths.iter().enumerate();
        return each
            .map(|(i, p)| load_one(p, i, format, territory))
            .collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(path) = paths.get(i) else {
                return done;
            };
            done.push((i, load_one(path, i, format, territory)));
        }
    };
    let mut results: Vec<Option<Outcome>> = paths.iter().map(|_| None).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers).map(|_| s.spawn(work)).collect();
        for h in handles {
            // A loader panic is a bug, not bad input: let it surface as one.
            let done = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            for (i, r) in done {
                results[i] = Some(r);
            }
        }
    });
    results.into_iter().flatten().collect()
}

/// Moving rather than copying the first file's entries saves the common single-file case a
/// copy of a million entries.
fn absorb<T>(all: &mut Vec<T>, new: Vec<T>) {
    if all.is_empty() {
        *all = new;
    } else {
        all.extend(new);
    }
}

/// Loads one file's contents from memory, exactly as [`load_files`] loads a file: gunzip,
/// format detection, parsing and the table's checks. `name` stands for the file in errors.
pub fn load_bytes(
    name: &Path,
    data: &[u8],
    format: Format,
    territory: Option<&str>,
) -> Result<GeoTable, GeoError> {
    let input = source::decode(name, data.to_vec())?;
    let (summary, loaded) = parse_input(name, input, 0, format, territory)?;
    table::build(&[name.to_owned()], loaded.v4, loaded.v6, vec![summary])
}

/// Loads and merges `paths`. `format` applies to every file (`Auto` detects per file);
/// `territory` is the code of CIDR lists and an error with any other format. When several
/// files are bad, the error is about the first of them.
pub fn load_files(
    paths: &[PathBuf],
    format: Format,
    territory: Option<&str>,
) -> Result<GeoTable, GeoError> {
    if paths.is_empty() {
        return Err(GeoError::NoFiles);
    }
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    let mut sources = Vec::with_capacity(paths.len());
    for outcome in load_all(paths, format, territory) {
        let (summary, loaded) = outcome?;
        sources.push(summary);
        absorb(&mut v4, loaded.v4);
        absorb(&mut v6, loaded.v6);
    }
    table::build(paths, v4, v6, sources)
}
