#![no_main]
libfuzzer_sys::fuzz_target!(
    |data: &[u8]| pbxkit_provisioning::fuzzing::provisioning_tftp_packet(data)
);
