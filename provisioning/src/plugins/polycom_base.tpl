<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<!-- Generated for {{ XX_mac }}; edit the templates, not this file. -->
<polycomConfig
{% block settings -%}
device.set="1"
device.auth.localAdminPassword.set="1"
device.auth.localAdminPassword="{{ XX_admin_password|e }}"
{% if XX_ntp_ip -%}
tcpIpApp.sntp.address.overrideDHCP="1"
tcpIpApp.sntp.address="{{ XX_ntp_ip|e }}"
{% endif -%}
{% if XX_timezone -%}
{{ XX_timezone }}
{% endif -%}
{% if XX_language -%}
lcl.ml.lang="{{ XX_language }}"
{% endif -%}
{% if XX_vlan_enabled -%}
device.net.vlanId.set="1"
device.net.vlanId="{{ XX_vlan_id }}"
qos.ethernet.other.user_priority="{{ XX_vlan_priority }}"
{% endif -%}
{% if XX_syslog_enabled -%}
device.syslog.serverName.set="1"
device.syslog.serverName="{{ XX_syslog_ip|e }}"
device.syslog.transport.set="1"
device.syslog.transport="1"
device.syslog.renderLevel.set="1"
device.syslog.renderLevel="{{ XX_syslog_level }}"
{% endif -%}
{% if exten_pickup_call -%}
call.directedCallPickupString="{{ exten_pickup_call|e }}"
{% endif -%}
{% if XX_phonebook_url -%}
mb.main.home="{{ XX_phonebook_url|e }}"
softkey.1.enable="1"
softkey.1.label="{{ XX_directory_label }}"
softkey.1.action="{{ XX_phonebook_url|e }}"
softkey.1.use.idle="1"
{% endif -%}
{% endblock -%}
{% for line in XX_lines -%}
reg.{{ line.no }}.displayName="{{ line.display_name|e }}"
reg.{{ line.no }}.label="{{ line.number|e }}"
reg.{{ line.no }}.address="{{ line.username|e }}"
reg.{{ line.no }}.auth.userId="{{ line.auth_username|e }}"
reg.{{ line.no }}.auth.password="{{ line.password|e }}"
reg.{{ line.no }}.server.1.address="{{ line.registrar_ip|e }}"
reg.{{ line.no }}.outboundProxy.address="{{ line.proxy_ip|e }}"
msg.mwi.{{ line.no }}.callBackMode="contact"
msg.mwi.{{ line.no }}.callBack="{{ line.voicemail|e }}"
{% endfor -%}
{% block funckeys -%}
{% if XX_fkeys -%}
{{ XX_fkeys }}
{% endif -%}
{% endblock -%}
/>

