//! Mapping one upstream JSON record through its descriptor to a [`SourceRecord`].
//!
//! Pure: no I/O. A record that cannot be mapped yields a [`MapError`] naming the field, the path and
//! the reason, so it can be quarantined with an explanation an operator can act on.

use jiff::{Timestamp, tz::TimeZone};
use serde_json::Value;

use super::descriptor::Descriptor;
use super::record::{Agency, Applicant, Document, Fee, Procedure, ResultDocument, SourceRecord, Step, Supplement};
use super::status::Status;
use super::timefmt::parse_time;

/// Why a record could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}` (path `{path}`): {reason}")]
pub struct MapError {
    pub field: String,
    pub path: String,
    pub reason: String,
}

/// The years a dossier's times can fall in, in the descriptor's time zone. Date parsing is lenient
/// (`%Y` reads `60` as the year 60 and `-2` as 2 BC; sources write `0001-01-01` or epoch 0 for "no
/// date"): such a time would reach the portal as a dossier received or due two thousand years ago,
/// shown late, or as a time `yyyyMMddHHmmss` cannot write. Electronic dossiers start well after 2000;
/// the end leaves every due time this century room.
pub const DOSSIER_YEARS: std::ops::RangeInclusive<i16> = 2000..=2099;

/// A descriptor made ready for mapping (time zone and the bounds of [`DOSSIER_YEARS`] resolved once,
/// not per record).
#[derive(Debug, Clone)]
pub struct Mapper {
    pub descriptor: Descriptor,
    tz: TimeZone,
    /// The first instant of [`DOSSIER_YEARS`] and the first after it, in `tz`.
    years: std::ops::Range<Timestamp>,
}

/// Follow a dotted path (`a.b.0.c`) into a JSON value. `null` counts as absent.
pub fn lookup<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    let mut cur = v;
    for part in path.split('.') {
        cur = match cur {
            Value::Object(m) => m.get(part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    (!cur.is_null()).then_some(cur)
}

/// `lookup`, for taking the value out.
pub fn lookup_mut<'v>(v: &'v mut Value, path: &str) -> Option<&'v mut Value> {
    let mut cur = v;
    for part in path.split('.') {
        cur = match cur {
            Value::Object(m) => m.get_mut(part)?,
            Value::Array(a) => a.get_mut(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    (!cur.is_null()).then_some(cur)
}

/// A scalar as text for vocabulary look-ups and identifiers.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => {
            let t = s.trim();
            (!t.is_empty()).then(|| t.to_string())
        }
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn truthy(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "co" | "có" => Some(true),
            "0" | "false" | "no" | "khong" | "không" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

struct Ctx<'a> {
    m: &'a Mapper,
    rec: &'a Value,
}

impl Ctx<'_> {
    fn err(&self, field: &str, path: &str, reason: impl Into<String>) -> MapError {
        MapError { field: field.to_string(), path: path.to_string(), reason: reason.into() }
    }

    fn text_in(&self, v: &Value, field: &str, path: Option<&String>) -> Result<Option<String>, MapError> {
        let Some(path) = path else { return Ok(None) };
        match lookup(v, path) {
            None => Ok(None),
            Some(x) => match x {
                Value::Array(_) | Value::Object(_) => {
                    Err(self.err(field, path, "expected a text or number value, found a nested value"))
                }
                other => Ok(scalar_text(other)),
            },
        }
    }

    fn text(&self, field: &str, path: Option<&String>) -> Result<Option<String>, MapError> {
        self.text_in(self.rec, field, path)
    }

    fn required_text(&self, field: &str, path: &String) -> Result<String, MapError> {
        self.text(field, Some(path))?.ok_or_else(|| self.err(field, path, "missing (required)"))
    }

    fn time_in(&self, v: &Value, field: &str, path: Option<&String>) -> Result<Option<Timestamp>, MapError> {
        let Some(path) = path else { return Ok(None) };
        match lookup(v, path) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(x) => {
                let t =
                    parse_time(x, &self.m.descriptor.dates.format, &self.m.tz).map_err(|r| self.err(field, path, r))?;
                if !self.m.years.contains(&t) {
                    let year = t.to_zoned_datetime(self.m.tz.clone()).year();
                    return Err(self.err(
                        field,
                        path,
                        format!(
                            "{x} reads as the year {year}, outside the years {}–{} a dossier's times can fall in \
                             (a two-digit or negative year, or a placeholder such as 0001-01-01 or epoch 0, \
                             is the source's error: correct the record there, it is read again when it changes)",
                            DOSSIER_YEARS.start(),
                            DOSSIER_YEARS.end()
                        ),
                    ));
                }
                Ok(Some(t))
            }
        }
    }

    fn time(&self, field: &str, path: Option<&String>) -> Result<Option<Timestamp>, MapError> {
        self.time_in(self.rec, field, path)
    }

    fn flag_in(&self, v: &Value, field: &str, path: Option<&String>) -> Result<Option<bool>, MapError> {
        let Some(path) = path else { return Ok(None) };
        match lookup(v, path) {
            None => Ok(None),
            Some(x) => truthy(x).map(Some).ok_or_else(|| self.err(field, path, format!("{x} is not a yes/no value"))),
        }
    }

    /// Look a source value up in one of the descriptor's vocabularies.
    fn vocab_in<T: Clone>(
        &self,
        v: &Value,
        field: &str,
        path: Option<&String>,
        map: &std::collections::BTreeMap<String, T>,
        map_name: &str,
    ) -> Result<Option<T>, MapError> {
        let Some(path) = path else { return Ok(None) };
        let Some(raw) = lookup(v, path).and_then(scalar_text) else { return Ok(None) };
        map.get(&raw).cloned().map(Some).ok_or_else(|| {
            self.err(
                field,
                path,
                format!("value {raw:?} is not in the descriptor's {map_name} (add it to the descriptor and reload)"),
            )
        })
    }

    fn items(&self, field: &str, path: &str) -> Result<Vec<&Value>, MapError> {
        match lookup(self.rec, path) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => Ok(a.iter().collect()),
            Some(_) => Err(self.err(field, path, "expected a list")),
        }
    }
}

impl Mapper {
    pub fn new(descriptor: Descriptor) -> Self {
        let tz = descriptor.time_zone();
        // New Year's midnight in the zone; where it falls in a gap or a fold, the first instant
        // whose local year is the one named (`compatible` takes the later side of a gap and the
        // earlier of a fold).
        let new_year = |year: i16| {
            tz.to_ambiguous_timestamp(jiff::civil::date(year, 1, 1).at(0, 0, 0, 0))
                .compatible()
                .expect("New Year's midnight of a year between 2000 and 2100 exists in every zone")
        };
        let years = new_year(*DOSSIER_YEARS.start())..new_year(DOSSIER_YEARS.end() + 1);
        Self { descriptor, tz, years }
    }

    /// The record's native id, when it can be read at all (for quarantine rows of unmappable records).
    pub fn native_id(&self, rec: &Value) -> Option<String> {
        lookup(rec, &self.descriptor.fields.native_id).and_then(scalar_text)
    }

    /// The record's updated time, when readable (the poller's walk needs it even for bad records).
    pub fn updated_at(&self, rec: &Value) -> Option<Timestamp> {
        let path = &self.descriptor.fields.updated_at;
        lookup(rec, path).and_then(|v| parse_time(v, &self.descriptor.dates.format, &self.tz).ok())
    }

    /// Map one record. `source` is the configured source name.
    pub fn map(&self, source: &str, rec: &Value) -> Result<SourceRecord, MapError> {
        if !rec.is_object() {
            return Err(MapError {
                field: "(record)".into(),
                path: String::new(),
                reason: "a record must be a JSON object".into(),
            });
        }
        let c = Ctx { m: self, rec };
        let d = &self.descriptor;
        let f = &d.fields;

        let status_path = &f.status;
        let status_raw = c.required_text("status", status_path)?;
        let status_code = *d.status_map.get(&status_raw).ok_or_else(|| {
            c.err(
                "status",
                status_path,
                format!(
                    "status {status_raw:?} is not in the descriptor's status_map (add it to the descriptor and reload)"
                ),
            )
        })?;
        let status = Status::from_code(status_code)
            .ok_or_else(|| c.err("status", status_path, format!("maps to {status_code}, not a portal status")))?;

        let mut reference_codes = Vec::new();
        for p in &f.reference_codes {
            if let Some(code) = c.text("reference_codes", Some(p))? {
                reference_codes.push(code);
            }
        }
        let code = c.required_text("code", &f.code)?;
        reference_codes.retain(|r| r != &code);

        let received_at = c.time("received_at", f.received_at.as_ref())?;
        let submitted_at = c.time("submitted_at", f.submitted_at.as_ref())?;
        if received_at.is_none() && submitted_at.is_none() {
            let path = f.received_at.as_ref().or(f.submitted_at.as_ref()).cloned().unwrap_or_default();
            return Err(c.err("received_at", &path, "missing: a dossier needs a received or submitted time"));
        }
        let updated_at = c
            .time("updated_at", Some(&f.updated_at))?
            .ok_or_else(|| c.err("updated_at", &f.updated_at, "missing (required)"))?;

        // DuocThanhToanTrucTuyen: a paid_online_map entry wins; else a yes/no means "paid through the
        // local gateway" (2), and a number 0–2 passes through.
        let paid_online = match f.paid_online.as_ref().and_then(|p| lookup(rec, p).map(|v| (p, v))) {
            None => None,
            Some((p, v)) => {
                let text = scalar_text(v).unwrap_or_default();
                match (d.paid_online_map.get(&text), v) {
                    (Some(code), _) => Some(*code),
                    (None, Value::Bool(b)) => Some(if *b { 2 } else { 0 }),
                    (None, _) => match text.parse::<u8>() {
                        Ok(n) if n <= 2 => Some(n),
                        _ => return Err(c.err("paid_online", p, format!("{v} is not 0, 1 or 2"))),
                    },
                }
            }
        };

        let mut supplements = Vec::new();
        if let Some(s) = &d.supplements {
            for (i, item) in c.items("supplements", &s.path)?.into_iter().enumerate() {
                let field = format!("supplements[{i}]");
                let requested_at = c
                    .time_in(item, &field, Some(&s.requested_at))?
                    .ok_or_else(|| c.err(&field, &s.requested_at, "missing request time"))?;
                supplements.push(Supplement {
                    id: c.text_in(item, &field, s.id.as_ref())?,
                    content: c.text_in(item, &field, s.content.as_ref())?,
                    requested_at,
                    received_at: c.time_in(item, &field, s.received_at.as_ref())?,
                });
            }
        }

        let mut steps = Vec::new();
        if let Some(s) = &d.steps {
            for (i, item) in c.items("steps", &s.path)?.into_iter().enumerate() {
                let field = format!("steps[{i}]");
                let at =
                    c.time_in(item, &field, Some(&s.at))?.ok_or_else(|| c.err(&field, &s.at, "missing step time"))?;
                let status = c
                    .vocab_in(item, &field, s.status.as_ref(), &d.status_map, "status_map")?
                    .and_then(Status::from_code);
                steps.push(Step {
                    actor: c.text_in(item, &field, s.actor.as_ref())?,
                    title: c.text_in(item, &field, s.title.as_ref())?,
                    department: c.text_in(item, &field, s.department.as_ref())?,
                    content: c.text_in(item, &field, s.content.as_ref())?,
                    at,
                    status,
                    started_at: c.time_in(item, &field, s.started_at.as_ref())?,
                    deadline: c.time_in(item, &field, s.deadline.as_ref())?,
                });
            }
        }

        let mut documents = Vec::new();
        if let Some(s) = &d.documents {
            for (i, item) in c.items("documents", &s.path)?.into_iter().enumerate() {
                let field = format!("documents[{i}]");
                documents.push(Document {
                    id: c.text_in(item, &field, s.id.as_ref())?,
                    name: c
                        .text_in(item, &field, Some(&s.name))?
                        .ok_or_else(|| c.err(&field, &s.name, "missing document name"))?,
                    component_code: c.text_in(item, &field, s.component_code.as_ref())?,
                    url: c.text_in(item, &field, s.url.as_ref())?,
                    digitized: c.flag_in(item, &field, s.digitized.as_ref())?,
                });
            }
        }

        let mut results = Vec::new();
        if let Some(s) = &d.results {
            for (i, item) in c.items("results", &s.path)?.into_iter().enumerate() {
                let field = format!("results[{i}]");
                results.push(ResultDocument {
                    id: c.text_in(item, &field, s.id.as_ref())?,
                    name: c
                        .text_in(item, &field, Some(&s.name))?
                        .ok_or_else(|| c.err(&field, &s.name, "missing result name"))?,
                    code: c.text_in(item, &field, s.code.as_ref())?,
                    url: c.text_in(item, &field, s.url.as_ref())?,
                    electronic: c.flag_in(item, &field, s.electronic.as_ref())?,
                });
            }
        }

        let mut fees = Vec::new();
        if let Some(s) = &d.fees {
            for (i, item) in c.items("fees", &s.path)?.into_iter().enumerate() {
                let field = format!("fees[{i}]");
                let amount = match c.text_in(item, &field, s.amount.as_ref())? {
                    None => None,
                    Some(t) => Some(
                        t.parse::<f64>()
                            .ok()
                            .filter(|a| a.is_finite() && *a >= 0.0)
                            .map(|a| a.round() as i64)
                            .ok_or_else(|| {
                                c.err(&field, s.amount.as_deref().unwrap_or(""), format!("{t:?} is not an amount"))
                            })?,
                    ),
                };
                fees.push(Fee {
                    code: c.text_in(item, &field, s.code.as_ref())?,
                    name: c
                        .text_in(item, &field, Some(&s.name))?
                        .ok_or_else(|| c.err(&field, &s.name, "missing fee name"))?,
                    amount,
                    method: c.vocab_in(item, &field, s.method.as_ref(), &d.fee_method_map, "fee_method_map")?,
                });
            }
        }

        Ok(SourceRecord {
            source: source.to_string(),
            native_id: c.required_text("native_id", &f.native_id)?,
            code,
            reference_codes,
            procedure: Procedure {
                code: c.required_text("procedure_code", &f.procedure_code)?,
                name: c.text("procedure_name", f.procedure_name.as_ref())?,
                sector_code: c.text("sector_code", f.sector_code.as_ref())?,
                sector_name: c.text("sector_name", f.sector_name.as_ref())?,
            },
            agency: Agency {
                code: c.text("agency_code", f.agency_code.as_ref())?,
                name: c.text("agency_name", f.agency_name.as_ref())?,
                level: match c.text("agency_level", f.agency_level.as_ref())? {
                    None => None,
                    Some(l) if d.agency_level_map.is_empty() => Some(l),
                    Some(l) => Some(d.agency_level_map.get(&l).cloned().ok_or_else(|| {
                        c.err(
                            "agency_level",
                            f.agency_level.as_deref().unwrap_or(""),
                            format!("value {l:?} is not in the descriptor's agency_level_map"),
                        )
                    })?),
                },
            },
            applicant: Applicant {
                name: c.text("applicant_name", f.applicant_name.as_ref())?,
                id_number: c.text("applicant_id_number", f.applicant_id_number.as_ref())?,
                kind: c.vocab_in(
                    rec,
                    "applicant_type",
                    f.applicant_type.as_ref(),
                    &d.applicant_type_map,
                    "applicant_type_map",
                )?,
                phone: c.text("applicant_phone", f.applicant_phone.as_ref())?,
                email: c.text("applicant_email", f.applicant_email.as_ref())?,
            },
            channel: c.vocab_in(rec, "channel", f.channel.as_ref(), &d.channel_map, "channel_map")?,
            submitted_at,
            received_at,
            due_at: c.time("due_at", f.due_at.as_ref())?,
            finished_at: c.time("finished_at", f.finished_at.as_ref())?,
            returned_at: c.time("returned_at", f.returned_at.as_ref())?,
            refused_at: c.time("refused_at", f.refused_at.as_ref())?,
            updated_at,
            status,
            summary: c.text("summary", f.summary.as_ref())?,
            supplements,
            steps,
            documents,
            results,
            fees,
            digitized: c.flag_in(rec, "digitized", f.digitized.as_ref())?,
            paid_online,
            vneid_verified: c.flag_in(rec, "vneid_verified", f.vneid_verified.as_ref())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapper() -> Mapper {
        let text = r#"
name = "t"
title = "test"
kind = "ministry"
[auth]
style = "none"
[list]
path = "/x"
page_size = 10
[pagination]
style = "page_number"
order = "updated_desc"
page_param = "p"
size_param = "s"
[response]
records = "items"
[dates]
format = "%Y-%m-%d %H:%M:%S"
[fields]
native_id = "id"
code = "ma"
reference_codes = ["goc"]
procedure_code = "tt.ma"
received_at = "nhan"
updated_at = "capNhat"
status = "tt2"
channel = "kenh"
[status_map]
DANG_XU_LY = 4
XONG = 9
[channel_map]
TRUC_TUYEN = 2
[steps]
path = "buoc"
at = "luc"
actor = "ai"
status = "tt2"
"#;
        Mapper::new(Descriptor::parse(text).unwrap())
    }

    fn good() -> Value {
        json!({"id": 7, "ma": "M-1", "goc": "C-1", "tt": {"ma": "1.001193"}, "nhan": "2026-01-16 08:00:00",
               "capNhat": "2026-01-16 09:00:00", "tt2": "DANG_XU_LY", "kenh": "TRUC_TUYEN",
               "buoc": [{"luc": "2026-01-16 09:00:00", "ai": "Trần Thị B", "tt2": "DANG_XU_LY"}]})
    }

    #[test]
    fn maps_a_record_through_the_descriptor() {
        let r = mapper().map("moj", &good()).unwrap();
        assert_eq!(r.native_id, "7");
        assert_eq!(r.code, "M-1");
        assert_eq!(r.reference_codes, vec!["C-1".to_string()]);
        assert_eq!(r.status, Status::Processing);
        assert_eq!(r.channel, Some(2));
        assert_eq!(r.steps.len(), 1);
        assert_eq!(r.received_at.unwrap(), "2026-01-16T01:00:00Z".parse::<Timestamp>().unwrap());
    }

    #[test]
    fn each_failure_names_field_path_and_reason() {
        let m = mapper();
        let mut bad = good();
        bad["tt2"] = json!("LA_LUNG");
        let e = m.map("moj", &bad).unwrap_err();
        assert_eq!((e.field.as_str(), e.path.as_str()), ("status", "tt2"));
        assert!(e.reason.contains("LA_LUNG"));

        let mut bad = good();
        bad["nhan"] = json!("2026-02-31 10:00:00");
        let e = m.map("moj", &bad).unwrap_err();
        assert_eq!(e.field, "received_at");

        let mut bad = good();
        bad.as_object_mut().unwrap().remove("ma");
        assert_eq!(m.map("moj", &bad).unwrap_err().field, "code");

        let mut bad = good();
        bad["buoc"] = json!([{"ai": "x"}]);
        assert_eq!(m.map("moj", &bad).unwrap_err().field, "steps[0]");

        assert!(m.map("moj", &json!([1, 2])).is_err());
    }

    #[test]
    fn a_time_outside_the_dossier_years_is_refused_with_its_reading() {
        let m = mapper();
        // What the lenient pattern reads: a two-digit year, a negative one, .NET's "no date".
        for (value, year) in [
            ("2026-01-16 08:00:00", None),
            ("60-01-16 08:00:00", Some("60")),
            ("-2-01-16 08:00:00", Some("-2")),
            ("0001-01-01 00:00:00", Some("1")),
            ("2100-01-01 00:00:00", Some("2100")),
            ("1999-12-31 23:59:59", Some("1999")),
        ] {
            let mut rec = good();
            rec["nhan"] = json!(value);
            match (m.map("moj", &rec), year) {
                (Ok(_), None) => {}
                (Err(e), Some(y)) => {
                    assert_eq!((e.field.as_str(), e.path.as_str()), ("received_at", "nhan"), "{value}");
                    assert!(
                        e.reason.contains(&format!("the year {y},")) && e.reason.contains("2000–2099"),
                        "{}",
                        e.reason
                    );
                }
                (got, _) => panic!("{value}: {got:?}"),
            }
        }
        // Every time the mapper reads goes through the same check: a step's time too.
        let mut rec = good();
        rec["buoc"][0]["luc"] = json!("0001-01-01 00:00:00");
        assert_eq!(m.map("moj", &rec).unwrap_err().field, "steps[0]");
    }

    #[test]
    fn lookup_follows_objects_and_arrays_and_treats_null_as_absent() {
        let v = json!({"a": {"b": [{"c": 1}, {"c": null}]}});
        assert_eq!(lookup(&v, "a.b.0.c"), Some(&json!(1)));
        assert_eq!(lookup(&v, "a.b.1.c"), None);
        assert_eq!(lookup(&v, "a.x"), None);
    }
}
