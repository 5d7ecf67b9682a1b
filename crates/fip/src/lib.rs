//! Moving a floating IP at the cloud provider: the library behind `fip-claim`, and the
//! provider step of `nat-notify` and the `fip-owner` probe of `ha-check`.
//!
//! * [`aws`]: Elastic IP, route tables, source/dest check (EC2 Query API, [`sigv4`], [`xml`]).
//! * [`linode`]: IP Sharing (the union rule), assign, release.
//! * [`hetzner`]: Floating IP assign + action polling.
//! * [`digitalocean`]: Reserved IP assign + action polling.
//! * [`http`]: timeouts, one deadline, retries with backoff and jitter, verified TLS, call log.
//! * [`rest`]: bearer tokens (env or a 0600 file) and provider error texts.

pub mod aws;
pub mod digitalocean;
pub mod hetzner;
pub mod http;
pub mod linode;
pub mod model;
pub mod rest;
pub mod sigv4;
pub mod xml;
