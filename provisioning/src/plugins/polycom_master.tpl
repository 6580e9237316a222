<?xml version="1.0" standalone="yes"?>
<!-- Generated for {{ XX_mac }}; edit the templates, not this file. -->
<APPLICATION APP_FILE_PATH="sip.ld" CONFIG_FILES="{{ XX_config_files|e }}" MISC_FILES="" LOG_FILE_DIRECTORY="" OVERRIDES_DIRECTORY="" CONTACTS_DIRECTORY="" LICENSE_DIRECTORY="" USER_PROFILES_DIRECTORY="" CALL_LISTS_DIRECTORY="" COREFILE_DIRECTORY="">
</APPLICATION>

