//! The simulated world over real HTTP on loopback: each system's dialect, auth and pagination,
//! the faults on demand, bulk mode, the portal contract, the change ticker and the expected truth
//! for every kind of dual-running pair.

use std::{path::PathBuf, time::Duration};

use jiff::Timestamp;
use reqwest::{Client, StatusCode};
use serde_json::Value;

use super::{SimOptions, World, fixtures_start, model::Source};
use crate::clock::SimClock;

/// The ingest benchmark's bulk mode.
mod bulk;
/// City (iGate) and Ministry of Justice dialects.
mod city_moj;
/// A client driven by each `adapters/*.toml` descriptor: the descriptors fit the servers.
mod descriptors;
/// Misbehaviour on demand.
mod faults;
/// The four other ministries' dialects, auth and pagination.
mod ministries;
/// The portal contract.
mod portal;
/// Systems that write their own dossiers to the portal.
mod self_sync;
/// Changes over time and the expected truth.
mod world;

fn opts() -> SimOptions {
    let mut o = SimOptions::demo(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures"),
        SimClock::starting_now(fixtures_start(), 60.0),
    );
    // Tests drive changes themselves unless they are about the ticker.
    o.tick = Duration::ZERO;
    o
}

fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

async fn get_json(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// The well-formed records one system holds now.
fn good_records(w: &World, source: Source) -> Vec<super::model::Dossier> {
    w.shared
        .lock_upstream()
        .records(source)
        .iter()
        .filter_map(|r| match r {
            super::world::Record::Good(d) => Some((**d).clone()),
            _ => None,
        })
        .collect()
}
/// The invariant checker fails a bridge that did nothing.
mod check;
