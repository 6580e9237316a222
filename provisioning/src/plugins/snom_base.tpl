<?xml version="1.0" encoding="utf-8"?>
<!-- Generated for {{ XX_mac }}; edit the templates, not this file. -->
<settings>
<phone-settings e="2">
{% block settings -%}
<admin_mode_password perm="R">{{ XX_admin_password|e }}</admin_mode_password>
<http_user perm="R">{{ XX_admin_username|e }}</http_user>
<http_pass perm="R">{{ XX_admin_password|e }}</http_pass>
{% if XX_ntp_ip -%}
<ntp_server perm="R">{{ XX_ntp_ip|e }}</ntp_server>
{% endif -%}
{% if XX_timezone -%}
{{ XX_timezone }}
{% endif -%}
{% if XX_language -%}
<language perm="R">{{ XX_language }}</language>
<web_language perm="R">{{ XX_language }}</web_language>
<tone_scheme perm="R">{{ XX_tone_scheme }}</tone_scheme>
{% endif -%}
{% if XX_vlan_enabled -%}
<vlan_id perm="R">{{ XX_vlan_id }}</vlan_id>
<vlan_qos perm="R">{{ XX_vlan_priority }}</vlan_qos>
{% endif -%}
{% if XX_syslog_enabled -%}
<syslog_server perm="R">{{ XX_syslog_ip|e }}:{{ XX_syslog_port }}</syslog_server>
{% endif -%}
{% if XX_phonebook_url -%}
<dkey_directory perm="R">url {{ XX_phonebook_url|e }}</dkey_directory>
{% endif -%}
{% if exten_dnd -%}
<dnd_on_code perm="R">{{ exten_dnd|e }}</dnd_on_code>
<dnd_off_code perm="R">{{ exten_dnd|e }}</dnd_off_code>
{% endif -%}
{% endblock -%}
{% for line in XX_lines -%}
<user_active idx="{{ line.no }}" perm="R">on</user_active>
<user_realname idx="{{ line.no }}" perm="R">{{ line.display_name|e }}</user_realname>
<user_idle_text idx="{{ line.no }}" perm="R">{{ line.number|e }}</user_idle_text>
<user_name idx="{{ line.no }}" perm="R">{{ line.username|e }}</user_name>
<user_pname idx="{{ line.no }}" perm="R">{{ line.auth_username|e }}</user_pname>
<user_pass idx="{{ line.no }}" perm="R">{{ line.password|e }}</user_pass>
<user_host idx="{{ line.no }}" perm="R">{{ line.registrar_ip|e }}</user_host>
<user_outbound idx="{{ line.no }}" perm="R">{{ line.proxy_ip|e }}</user_outbound>
<user_mailbox idx="{{ line.no }}" perm="R">{{ line.voicemail|e }}</user_mailbox>
{% endfor -%}
</phone-settings>
<functionKeys e="2">
{% block funckeys -%}
{% if XX_fkeys -%}
{{ XX_fkeys }}
{% endif -%}
{% endblock -%}
</functionKeys>
</settings>

