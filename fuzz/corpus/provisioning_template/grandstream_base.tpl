<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated for {{ XX_mac }}; edit the templates, not this file. -->
<gs_provision version="1">
<mac>{{ XX_mac }}</mac>
<config version="1">
{% block settings -%}
<P2>{{ XX_admin_password|e }}</P2>
{% if XX_ntp_ip -%}
<P30>{{ XX_ntp_ip|e }}</P30>
{% endif -%}
{% if XX_timezone -%}
<P64>{{ XX_timezone|e }}</P64>
{% endif -%}
{% if XX_language -%}
<P1362>{{ XX_language }}</P1362>
{% endif -%}
{% if XX_vlan_enabled -%}
<P51>{{ XX_vlan_id }}</P51>
<P87>{{ XX_vlan_priority }}</P87>
{% endif -%}
{% if XX_syslog_enabled -%}
<P207>{{ XX_syslog_ip|e }}</P207>
<P208>{{ XX_syslog_level }}</P208>
{% endif -%}
{% if exten_pickup_call -%}
<P1347>{{ exten_pickup_call|e }}</P1347>
{% endif -%}
{% if XX_phonebook_url -%}
<P330>1</P330>
<P331>{{ XX_phonebook_url|e }}</P331>
{% endif -%}
{% endblock -%}
{% for code, value in XX_line_values -%}
<{{ code }}>{{ value|e }}</{{ code }}>
{% endfor -%}
{% block funckeys -%}
{% for code, value in XX_fkeys -%}
<{{ code }}>{{ value|e }}</{{ code }}>
{% endfor -%}
{% endblock -%}
</config>
</gs_provision>

