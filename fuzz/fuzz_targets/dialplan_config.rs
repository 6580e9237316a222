#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pbxkit_dialplan::fuzzing::dialplan_config(data));
