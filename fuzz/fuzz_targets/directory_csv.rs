#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pbxkit_directory::fuzzing::directory_csv(data));
