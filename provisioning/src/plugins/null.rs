//! The `null` plugin: it generates nothing, so that a phone given to it finds no
//! configuration file and keeps its own settings. provd assigns it to devices that must
//! not be provisioned; it supports no device, so it is only ever chosen by hand.

use super::{GeneratedFile, Plugin, PluginError};
use crate::identify::{DeviceInfo, Support};
use crate::model::{Device, RawConfig};

/// The plugin that configures nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Null;

impl Plugin for Null {
    fn name(&self) -> &str {
        "null"
    }

    fn support(&self, _device: &DeviceInfo) -> Support {
        Support::None
    }

    fn configure(
        &self,
        _device: &Device,
        _raw: &RawConfig,
    ) -> Result<Vec<GeneratedFile>, PluginError> {
        Ok(Vec::new())
    }
}
