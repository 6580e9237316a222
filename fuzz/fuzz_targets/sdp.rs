#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pbxkit_sip::fuzzing::sdp(data));
