#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pbxkit_rtp::fuzzing::rtp_conference(data));
