#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pbxkit_acd::fuzzing::acd_skill_rule(data));
