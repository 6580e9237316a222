//! Built-in plugins: the code and templates that turn a device's effective raw config
//! into the files its firmware reads.

pub mod yealink;
