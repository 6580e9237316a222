//! # pbxkit-provisioning
//!
//! What wazo-provd does, as an embeddable crate: phones are identified from their HTTP,
//! TFTP or DHCP requests, matched to a plugin, and receive configuration files rendered
//! from Jinja2 templates compatible with provd plugins. Servers live behind the `server`
//! feature.
//!
//! Status: the crate is being built (see the project issues); this release has no API yet.
#![forbid(unsafe_code)]
