//! Moving a floating IP at the cloud provider: the library behind `fip-claim`, and the
//! provider step of `nat-notify` and the `fip-owner` probe of `ha-check`.
//!
//! Work in progress (issue "fip-claim"): this crate holds the pieces that are done and
//! tested on their own; the provider clients and the binary follow.
//!
//! * [`sigv4`]: AWS Signature Version 4 for the EC2 Query API.

pub mod aws;
pub mod http;
pub mod model;
pub mod sigv4;
pub mod xml;
