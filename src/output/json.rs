//! JSON output (schema in `docs/output-schema.md`). Field names and meanings are an interface:
//! change them only with the schema version.

use super::FileSummary;
use crate::http::{Anomaly, Exchange, Message};
use crate::text::lossless;
use serde::Serialize;
use std::io::{self, Write};

/// Version of the JSON documents capdiag writes.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
pub struct JsonMessage {
    pub frame: u64,
    pub first_frame: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub version: String,
    pub content_type: Option<String>,
    pub body_length: u64,
    pub body_missing: u64,
    pub complete: bool,
    /// Seconds since the Unix epoch of the message's first byte.
    pub time: f64,
    pub headers: Vec<[String; 2]>,
    pub anomalies: Vec<Anomaly>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl JsonMessage {
    pub fn new(m: &Message, body_limit: Option<usize>) -> JsonMessage {
        JsonMessage {
            frame: m.frame,
            first_frame: m.first_frame,
            method: m.method().map(str::to_string),
            uri: m.uri().map(lossless),
            host: if m.is_request() {
                m.header_str("host")
            } else {
                None
            },
            status: m.status(),
            reason: m.reason().map(lossless),
            version: format!("HTTP/1.{}", m.version()),
            content_type: m.header_str("content-type"),
            body_length: m.body.length,
            body_missing: m.body.missing,
            complete: m.complete,
            time: m.first_ts as f64 / 1e9,
            headers: m
                .headers()
                .map(|(n, v)| [lossless(n), lossless(v)])
                .collect(),
            anomalies: m.anomalies.clone(),
            body: body_limit.map(|l| lossless(&m.decoded_body(l))),
        }
    }
}

#[derive(Serialize)]
pub struct JsonExchange<'a> {
    pub file: &'a str,
    pub stream: u64,
    pub client: String,
    pub server: String,
    pub request: Option<JsonMessage>,
    pub interim: Vec<JsonMessage>,
    pub response: Option<JsonMessage>,
    /// Milliseconds from the request's first byte to the response's last.
    pub duration_ms: Option<f64>,
}

impl<'a> JsonExchange<'a> {
    pub fn new(file: &'a str, ex: &Exchange, body_limit: Option<usize>) -> JsonExchange<'a> {
        JsonExchange {
            file,
            stream: ex.stream,
            client: ex.client.to_string(),
            server: ex.server.to_string(),
            request: ex.request.as_ref().map(|m| JsonMessage::new(m, body_limit)),
            interim: ex
                .interim
                .iter()
                .map(|m| JsonMessage::new(m, body_limit))
                .collect(),
            response: ex
                .response
                .as_ref()
                .map(|m| JsonMessage::new(m, body_limit)),
            duration_ms: ex.duration_ns().map(|d| d as f64 / 1e6),
        }
    }
}

/// Writes `{"version": 1, "exchanges": [...], "files": [...]}` (or another list than
/// `exchanges`: `connections`) as results arrive, so nothing is held in memory.
pub struct JsonHttpWriter {
    first: bool,
}

impl JsonHttpWriter {
    pub fn start(out: &mut dyn Write) -> io::Result<JsonHttpWriter> {
        Self::start_list(out, "exchanges")
    }

    /// A document whose list is named `key`.
    pub fn start_list(out: &mut dyn Write, key: &str) -> io::Result<JsonHttpWriter> {
        write!(out, "{{\"version\":{SCHEMA_VERSION},\"{key}\":[")?;
        Ok(JsonHttpWriter { first: true })
    }

    pub fn exchange(&mut self, out: &mut dyn Write, ex: &JsonExchange<'_>) -> io::Result<()> {
        self.item(out, ex)
    }

    /// One item of the list.
    pub fn item(&mut self, out: &mut dyn Write, item: &impl Serialize) -> io::Result<()> {
        if !self.first {
            out.write_all(b",")?;
        }
        self.first = false;
        out.write_all(b"\n")?;
        serde_json::to_writer(&mut *out, item)?;
        Ok(())
    }

    pub fn finish(self, out: &mut dyn Write, files: &[FileSummary]) -> io::Result<()> {
        out.write_all(b"\n],\"files\":")?;
        serde_json::to_writer(&mut *out, files)?;
        out.write_all(b"}\n")?;
        out.flush()
    }
}
