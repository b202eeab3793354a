//! What rules share, so that a rule file holds only its own logic: bounded tables, evidence
//! builders, deadline queues, bodies, URLs, time and address classes.

pub mod attempts;
pub mod auth;
pub mod body;
pub mod bounded;
pub mod evidence;
pub mod net;
pub mod referral;
pub mod repeats;
pub mod s3_groups;
pub mod time;
pub mod url;
pub mod waiting;

pub use attempts::{AttemptGroups, Group, Named, Names, Shared, SharedNames};
pub use auth::{auth_param, realm_of};
pub use body::{body_of, html_title, looks_like_html, tls_port_answer};
pub use bounded::Bounded;
pub use evidence::{
    exchange_evidence, exchange_parties, named, request_label, request_line, response_label, secs,
};
pub use net::is_internal;
pub use repeats::Repeats;
pub use s3_groups::{S3Group, S3Groups};
pub use time::{human_duration, parse_http_date};
pub use url::{Url, percent_decode, query_param, target_path, target_path_query};
pub use waiting::Waiting;
