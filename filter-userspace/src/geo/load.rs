//! Loading several files and merging them, in three steps: every file is read (gunzipped,
//! unzipped) and its format detected, each on its own and in parallel; the GeoLite2
//! locations files among them are gathered, since every GeoLite2 blocks file of the load is
//! joined with them; then every data file is parsed, again in parallel.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::geolite2::{self, Geonames};
use super::parts::{LoadOptions, Part, at_line, gather, open};
use super::table::{self, Loaded};
use super::{
    Format, GeoError, GeoTable, SourceSummary, cidr, csv, ip2location, list, mmdb, rir, source,
};

/// `f(i)` for every `i < count`, on up to one thread per CPU, results in order.
fn parallel<R: Send>(count: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(count);
    if workers <= 1 {
        return (0..count).map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= count {
                return done;
            }
            done.push((i, f(i)));
        }
    };
    let mut results: Vec<Option<R>> = (0..count).map(|_| None).collect();
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

/// Parses one data part (`src` is its index).
fn parse(
    part: &Part,
    src: u32,
    geonames: &Geonames,
    options: &LoadOptions,
) -> Result<Loaded, GeoError> {
    let path = part.name.as_path();
    let data = &part.data;
    let loaded = match part.format {
        Format::Csv => csv::load(data, src).map_err(at_line(path))?,
        Format::Ip2location => ip2location::load(data, src).map_err(at_line(path))?,
        Format::Rir => rir::load(data, src).map_err(at_line(path))?,
        Format::Geolite2 => {
            let by = options.locate_by.unwrap_or_default();
            geolite2::blocks(data, src, geonames, by).map_err(at_line(path))?
        }
        Format::Mmdb => mmdb::load(data, src).map_err(|reason| GeoError::Mmdb {
            path: path.to_owned(),
            reason,
        })?,
        Format::Cidr | Format::Auto => {
            let code = options.territory.ok_or_else(|| GeoError::NeedsTerritory {
                path: path.to_owned(),
            })?;
            let id = csv::parse_code(code).map_err(|_| GeoError::BadTerritory {
                path: path.to_owned(),
                code: cidr::snippet(code),
            })?;
            list::load(data, id, src).map_err(at_line(path))?
        }
    };
    if loaded.v4.is_empty() && loaded.v6.is_empty() {
        return Err(GeoError::NoEntries {
            path: path.to_owned(),
            skipped: loaded.skipped,
        });
    }
    tracing::debug!(
        "{}: {}, {} rows, {} + {} prefixes",
        path.display(),
        part.format,
        loaded.rows,
        loaded.v4.len(),
        loaded.v6.len()
    );
    Ok(loaded)
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

/// Loads `paths`, whose contents `read(i)` gives (decompressed). Errors reading a file come
/// before errors parsing one; among each, the first file's.
fn load(
    paths: &[PathBuf],
    read: impl Fn(usize) -> Result<source::Input, GeoError> + Sync,
    options: &LoadOptions,
) -> Result<GeoTable, GeoError> {
    if paths.is_empty() {
        return Err(GeoError::NoFiles);
    }
    let opened = parallel(paths.len(), |i| open(i, &paths[i], read(i)?, options));
    let mut files = Vec::with_capacity(paths.len());
    let mut parts = Vec::new();
    for outcome in opened {
        let mut file = outcome?;
        parts.append(&mut file.parts);
        files.push(file);
    }
    let geolite2 = parts.iter().any(|p| p.format == Format::Geolite2);
    if let (Some(by), false) = (options.locate_by, geolite2) {
        return Err(GeoError::LocateByUnused(by));
    }
    let names: Vec<PathBuf> = parts.iter().map(|p| p.name.clone()).collect();
    let (geonames, location_rows) = gather(&parts, &names, paths)?;
    let parsed = parallel(parts.len(), |i| match location_rows[i] {
        Some(rows) => Ok(Loaded {
            rows,
            ..Loaded::default()
        }),
        None => parse(
            &parts[i],
            u32::try_from(i).unwrap_or(u32::MAX),
            &geonames,
            options,
        ),
    });
    let mut sources: Vec<SourceSummary> = files
        .into_iter()
        .zip(paths)
        .map(|(f, path)| SourceSummary {
            path: path.clone(),
            format: Format::Auto,
            gzip: f.gzip,
            bytes: f.bytes,
            members: f.members,
            locate_by: None,
            rows: 0,
            skipped: 0,
            overlaps: 0,
            v4_prefixes: 0,
            v6_prefixes: 0,
        })
        .collect();
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for (part, outcome) in parts.iter().zip(parsed) {
        let loaded = outcome?;
        let s = &mut sources[part.file];
        // A file's format is its first part's: an archive holds files of one format.
        if s.format == Format::Auto {
            s.format = part.format;
        }
        if part.format == Format::Geolite2 {
            s.locate_by = Some(options.locate_by.unwrap_or_default());
        }
        s.rows += loaded.rows;
        s.skipped += loaded.skipped;
        s.overlaps += loaded.overlaps;
        s.v4_prefixes += loaded.v4.len();
        s.v6_prefixes += loaded.v6.len();
        absorb(&mut v4, loaded.v4);
        absorb(&mut v6, loaded.v6);
    }
    table::build(&names, v4, v6, sources)
}

/// Loads and merges `paths`. `format` applies to every file (`Auto` detects per file);
/// `territory` is the code of CIDR lists and an error with any other format. When several
/// files are bad, the error is about the first of them that cannot be read, else about the
/// first that cannot be parsed.
pub fn load_files(
    paths: &[PathBuf],
    format: Format,
    territory: Option<&str>,
) -> Result<GeoTable, GeoError> {
    let options = LoadOptions {
        format,
        territory,
        locate_by: None,
    };
    load_files_with(paths, &options)
}

/// [`load_files`] with every option.
pub fn load_files_with(paths: &[PathBuf], options: &LoadOptions) -> Result<GeoTable, GeoError> {
    load(paths, |i| source::read(&paths[i]), options)
}

/// Loads one file's contents from memory, exactly as [`load_files`] loads a file: gunzip,
/// unzip, format detection, parsing and the table's checks. `name` stands for the file in
/// errors.
pub fn load_bytes(
    name: &Path,
    data: &[u8],
    format: Format,
    territory: Option<&str>,
) -> Result<GeoTable, GeoError> {
    let options = LoadOptions {
        format,
        territory,
        locate_by: None,
    };
    load_inputs(&[(name.to_owned(), data)], &options)
}

/// Loads several files' contents from memory, as [`load_files_with`] loads files (a GeoLite2
/// blocks file with its locations file, say). Each name stands for its file in errors.
pub fn load_inputs(
    inputs: &[(PathBuf, &[u8])],
    options: &LoadOptions,
) -> Result<GeoTable, GeoError> {
    let names: Vec<PathBuf> = inputs.iter().map(|(name, _)| name.clone()).collect();
    let read = |i: usize| source::decode(&names[i], inputs[i].1.to_vec());
    load(&names, read, options)
}
