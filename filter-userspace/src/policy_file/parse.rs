//! From TOML text to a validated [`Declared`], or the first problem with its position.

use std::{collections::BTreeMap, ops::Range, path::Path};

use ipnet::IpNet;
use jiff::Timestamp;
use toml::Spanned;

use super::{
    Declared, DeclaredGeo, DeclaredMeeting, PolicyError, Position,
    parse_rule::{check_rules, rule},
    schema::{FileSchema, GeoSchema, MeetingSchema},
    source::Source,
};
use crate::{endpoint::Endpoint, geo::Format};

/// Parses and validates a policy file. `now` decides which expiries are in the past.
pub fn parse(path: &Path, text: &str, now: Timestamp) -> Result<Declared, PolicyError> {
    let src = Source {
        name: path.display().to_string(),
        text,
    };
    let file: FileSchema = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim_end().to_string();
        let meeting = enclosing_meeting(text, span.start);
        let key = text.get(span.clone()).unwrap_or_default().trim_matches('"');
        match meeting {
            Some(m) if message == "duplicate key" && m == key => {
                src.error(span, format!("meeting `{m}` is defined twice"))
            }
            Some(m) => src.error(span, format!("meeting `{m}`: {message}")),
            None => src.error(span, message),
        }
    })?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let base = std::path::absolute(dir)
        .map_err(|e| src.error(0..0, format!("resolving the file's directory: {e}")))?;
    let geo = file.geo.map(|g| geo(&src, &base, g)).transpose()?;
    let mux = file.mux.map(|m| mux(&src, m)).transpose()?;
    let mut meetings = BTreeMap::new();
    for (name, meeting) in file.meetings {
        let span = name.span();
        let name = name.into_inner();
        let declared = self::meeting(&src, &name, span, meeting, now)?;
        meetings.insert(name, declared);
    }
    check_across_meetings(&meetings)?;
    if let Some((ports, at)) = &mux {
        check_mux(ports, at, &meetings)?;
    }
    let declared = Declared {
        geo,
        mux: mux.map(|(ports, _)| ports),
        meetings,
    };
    Ok(declared)
}

fn geo(src: &Source, base: &Path, geo: Spanned<GeoSchema>) -> Result<DeclaredGeo, PolicyError> {
    let geo = geo.into_inner();
    let at = src.at(geo.files.span());
    if geo.files.get_ref().is_empty() {
        return Err(PolicyError::new(at, "[geo] files: list at least one file"));
    }
    let files = geo
        .files
        .into_inner()
        .into_iter()
        .map(|f| base.join(f.into_inner()))
        .collect();
    let format = match geo.format {
        None => Format::Auto,
        Some(f) => f
            .get_ref()
            .parse()
            .map_err(|e| src.error(f.span(), format!("[geo] format: {e}")))?,
    };
    Ok(DeclaredGeo {
        files,
        format,
        territory: geo.territory.map(Spanned::into_inner),
        at,
    })
}

/// `mux = [...]`: the shared ports, each with where it is written.
fn mux(
    src: &Source,
    list: Spanned<Vec<Spanned<String>>>,
) -> Result<(Vec<Endpoint>, Vec<Position>), PolicyError> {
    let mut ports: Vec<Endpoint> = Vec::new();
    let mut at = Vec::new();
    for text in list.into_inner() {
        let endpoint: Endpoint = text
            .get_ref()
            .parse()
            .map_err(|e: String| src.error(text.span(), format!("mux {e}")))?;
        if let Some(other) = ports.iter().find(|e| e.overlaps(&endpoint)) {
            return Err(src.error(text.span(), format!("mux {endpoint} overlaps {other}")));
        }
        ports.push(endpoint);
        at.push(src.at(text.span()));
    }
    Ok((ports, at))
}

/// A shared port shares no port a meeting owns.
fn check_mux(
    ports: &[Endpoint],
    at: &[Position],
    meetings: &BTreeMap<String, DeclaredMeeting>,
) -> Result<(), PolicyError> {
    for (port, at) in ports.iter().zip(at) {
        for (name, meeting) in meetings {
            if let Some(owned) = meeting.endpoints.iter().find(|e| e.shares_ports(port)) {
                return Err(PolicyError::new(
                    at.clone(),
                    format!(
                        "mux {port} shares ports with {owned}, which meeting `{name}` owns \
                         (line {}); a port is either one meeting's or shared",
                        meeting.at.line
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The rules of `meeting add`, in the file's words.
fn check_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok_char) {
        return Err(format!(
            "meeting name `{name}`: use 1 to 64 letters, digits, `.`, `_` or `-`"
        ));
    }
    Ok(())
}

fn meeting(
    src: &Source,
    name: &str,
    name_span: Range<usize>,
    meeting: Spanned<MeetingSchema>,
    now: Timestamp,
) -> Result<DeclaredMeeting, PolicyError> {
    check_name(name).map_err(|e| src.error(name_span.clone(), e))?;
    let m = meeting.into_inner();
    let in_meeting =
        |span: Range<usize>, what: String| src.error(span, format!("meeting `{name}`: {what}"));
    let mut endpoints: Vec<Endpoint> = Vec::new();
    for text in m.endpoints {
        let endpoint: Endpoint = text
            .get_ref()
            .parse()
            .map_err(|e: String| in_meeting(text.span(), format!("endpoint {e}")))?;
        if let Some(other) = endpoints.iter().find(|e| e.overlaps(&endpoint)) {
            let what = format!("endpoints {other} and {endpoint} overlap");
            return Err(in_meeting(text.span(), what));
        }
        endpoints.push(endpoint);
    }
    // A flow names a participant's address: runtime data, bound in the kernel only, never
    // written to the state file, the audit trail or an export.
    if let Some(flow) = m.flows.first() {
        let what = "flows are bindings of participants' addresses, not policy: bind them with \
                    `geofence flow add` or the daemon's binding API";
        return Err(in_meeting(flow.span(), what.to_string()));
    }
    let rules = m
        .rules
        .into_iter()
        .map(|r| rule(src, name, r, now))
        .collect::<Result<Vec<_>, _>>()?;
    let mut allows: Vec<IpNet> = Vec::new();
    for prefix in &m.allow {
        if let Some(rule) = rules
            .iter()
            .find(|r| r.prefixes.contains(&prefix.get_ref().0))
        {
            let what = format!(
                "allow {} is also blocked by order {}; a prefix is either blocked or allowed",
                prefix.get_ref().0,
                rule.order
            );
            return Err(in_meeting(prefix.span(), what));
        }
        allows.push(prefix.get_ref().0);
    }
    allows.sort();
    allows.dedup();
    check_rules(name, &rules)?;
    Ok(DeclaredMeeting {
        endpoints,
        rules,
        allows,
        at: src.at(name_span),
    })
}

/// An endpoint or a flow belongs to one meeting, or the kernel's session is ambiguous.
fn check_across_meetings(meetings: &BTreeMap<String, DeclaredMeeting>) -> Result<(), PolicyError> {
    let all: Vec<(&String, &DeclaredMeeting)> = meetings.iter().collect();
    for (i, (name, meeting)) in all.iter().enumerate() {
        for (other_name, other) in &all[..i] {
            for endpoint in &meeting.endpoints {
                if let Some(taken) = other.endpoints.iter().find(|e| e.overlaps(endpoint)) {
                    return Err(PolicyError::new(
                        meeting.at.clone(),
                        format!(
                            "meeting `{name}`: endpoint {endpoint} overlaps {taken} of meeting \
                             `{other_name}` (line {})",
                            other.at.line
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The meeting whose `[meetings.NAME]` or `[[meetings.NAME.rules]]` header comes last
/// before `offset`: context for errors the TOML parser reports by position alone.
fn enclosing_meeting(text: &str, offset: usize) -> Option<String> {
    // Up to the end of the error's line: an error in a header belongs to that header.
    let end = text
        .get(offset..)
        .and_then(|rest| rest.find('\n'))
        .map_or(text.len(), |i| offset + i);
    let before = text.get(..end)?;
    let header = before
        .lines()
        .map(str::trim)
        .rfind(|l| l.starts_with('['))?;
    let inner = header.split(']').next()?.trim_start_matches('[').trim();
    let name = inner.strip_prefix("meetings.")?;
    let name = name.strip_suffix(".rules").unwrap_or(name).trim();
    Some(name.trim_matches('"').to_string())
}
