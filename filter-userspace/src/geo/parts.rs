//! The first two steps of a load: each file read becomes one part, or one per CSV member
//! of a zip archive, its format detected; then the GeoLite2 locations among all parts are
//! gathered for the blocks files to be joined with.

use std::path::{Path, PathBuf};

use super::error::Origin;
use super::geolite2::{self, Geonames, Kind};
use super::{Format, GeoError, LocateBy, archive, source};

/// How to read the files of a load.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadOptions<'a> {
    /// Applies to every file (`Auto` detects per file, and per member of a zip).
    pub format: Format,
    /// The territory of CIDR lists; an error with any other format.
    pub territory: Option<&'a str>,
    /// How GeoLite2 blocks are placed; `None` is the default, `Some` an explicit choice,
    /// which is an error when no file is GeoLite2.
    pub locate_by: Option<LocateBy>,
}

/// Names the file and line of a row's error.
pub(crate) fn at_line(path: &Path) -> impl Fn((u32, super::Reason)) -> GeoError + '_ {
    move |(line, reason)| GeoError::Entry {
        at: Origin {
            path: path.to_owned(),
            line: Some(line),
        },
        reason,
    }
}

/// One file's data, or one member of a zip archive.
pub(crate) struct Part {
    /// The index of its file.
    pub file: usize,
    /// What names it in messages: the file, or `archive.zip(member)`.
    pub name: PathBuf,
    pub data: Vec<u8>,
    /// Never `Auto`.
    pub format: Format,
}

/// What reading one file gave.
pub(crate) struct Opened {
    pub gzip: bool,
    pub bytes: u64,
    /// The members read, for an archive.
    pub members: Vec<String>,
    pub parts: Vec<Part>,
}

fn part_format(name: &Path, data: &[u8], options: &LoadOptions) -> Result<Format, GeoError> {
    let format = match options.format {
        Format::Auto => source::detect(data).ok_or_else(|| GeoError::NoEntries {
            path: name.to_owned(),
            skipped: 0,
        })?,
        f => f,
    };
    if options.territory.is_some() && format != Format::Cidr {
        return Err(GeoError::TerritoryNotAllowed {
            path: name.to_owned(),
            format,
        });
    }
    Ok(format)
}

/// Unpacks and detects one file's contents, already read and gunzipped.
pub(crate) fn open(
    file: usize,
    path: &Path,
    input: source::Input,
    options: &LoadOptions,
) -> Result<Opened, GeoError> {
    let (gzip, bytes) = (input.gzip, input.bytes);
    if !archive::is_zip(&input.data) {
        let format = part_format(path, &input.data, options)?;
        return Ok(Opened {
            gzip,
            bytes,
            members: Vec::new(),
            parts: vec![Part {
                file,
                name: path.to_owned(),
                data: input.data,
                format,
            }],
        });
    }
    let members = archive::members(path, &input.data)?;
    drop(input);
    let mut parts = Vec::with_capacity(members.len());
    let mut names = Vec::with_capacity(members.len());
    for member in members {
        let name = PathBuf::from(format!("{}({})", path.display(), member.name));
        let format = part_format(&name, &member.data, options)?;
        parts.push(Part {
            file,
            name,
            data: member.data,
            format,
        });
        names.push(member.name);
    }
    Ok(Opened {
        gzip,
        bytes,
        members: names,
        parts,
    })
}

/// A locations file next to a blocks file the operator did not give, for the error.
fn locations_beside(blocks: &Path) -> Option<PathBuf> {
    let dir = blocks.parent().filter(|d| !d.as_os_str().is_empty())?;
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains("-Locations-") && n.ends_with(".csv"))
        })
        .collect();
    found.sort();
    let english = found
        .iter()
        .position(|p| p.to_string_lossy().ends_with("-Locations-en.csv"));
    match english {
        Some(i) => Some(found.swap_remove(i)),
        None => found.into_iter().next(),
    }
}

/// The GeoLite2 locations of the load, and each part's rows if it is a locations file.
pub(crate) fn gather(
    parts: &[Part],
    names: &[PathBuf],
    paths: &[PathBuf],
) -> Result<(Geonames, Vec<Option<usize>>), GeoError> {
    let mut geonames = Geonames::default();
    let mut rows = vec![None; parts.len()];
    let (mut blocks, mut locations) = (None, None);
    for (i, part) in parts.iter().enumerate() {
        if part.format != Format::Geolite2 {
            continue;
        }
        // A file with neither header is parsed as blocks, whose parser names what it found.
        if geolite2::kind(&part.data) == Some(Kind::Locations) {
            let src = u32::try_from(i).unwrap_or(u32::MAX);
            let read = geonames.read(&part.data, src, names);
            rows[i] = Some(read.map_err(at_line(&part.name))?);
            locations.get_or_insert(i);
        } else {
            blocks.get_or_insert(i);
        }
    }
    match (blocks, locations) {
        (Some(i), None) => {
            let part = &parts[i];
            // Only a file given as such has a directory to look in.
            let beside = (part.name == paths[part.file])
                .then(|| locations_beside(&part.name))
                .flatten();
            Err(GeoError::NeedsLocations {
                path: part.name.clone(),
                beside,
            })
        }
        (None, Some(i)) => Err(GeoError::LocationsOnly {
            path: parts[i].name.clone(),
        }),
        _ => Ok((geonames, rows)),
    }
}
