# Generated for {{ XX_mac }}; edit the templates, not this file.
{% block settings -%}
admin password: {{ XX_admin_password }}
{% if XX_ntp_ip -%}
time server disabled: 0
time server1: {{ XX_ntp_ip }}
{% else -%}
time server disabled: 1
{% endif -%}
{% if XX_timezone -%}
{{ XX_timezone }}
{% endif -%}
{% if XX_language_file -%}
language: 1
language 1: i18n/{{ XX_language_file }}
tone set: {{ XX_tone_set }}
input language: {{ XX_input_language }}
{% endif -%}
{% if XX_vlan_enabled -%}
tagging enabled: 1
vlan id: {{ XX_vlan_id }}
priority non-ip: {{ XX_vlan_priority }}
{% else -%}
tagging enabled: 0
{% endif -%}
{% if XX_syslog_enabled -%}
log server ip: {{ XX_syslog_ip }}
log server port: {{ XX_syslog_port }}
{% endif -%}
{% if exten_pickup_call -%}
directed call pickup prefix: {{ exten_pickup_call }}
{% endif -%}
{% if XX_phonebook_url -%}
directory script: {{ XX_phonebook_url }}
{% endif -%}
{% endblock -%}
{% for line in XX_lines -%}
sip line{{ line.no }} auth name: {{ line.auth_username }}
sip line{{ line.no }} password: {{ line.password }}
sip line{{ line.no }} user name: {{ line.username }}
sip line{{ line.no }} display name: {{ line.display_name }}
sip line{{ line.no }} screen name: {{ line.display_name }}
sip line{{ line.no }} screen name 2: {{ line.number }}
sip line{{ line.no }} proxy ip: {{ line.proxy_ip }}
sip line{{ line.no }} proxy port: 5060
sip line{{ line.no }} registrar ip: {{ line.registrar_ip }}
sip line{{ line.no }} registrar port: 5060
sip line{{ line.no }} vmail: {{ line.voicemail }}
{% if XX_park -%}
sip line{{ line.no }} park pickup config: {{ XX_park }};{{ XX_park }};asterisk
{% endif -%}
{% endfor -%}
{% block funckeys -%}
{% if XX_fkeys -%}
{{ XX_fkeys }}
{% endif -%}
{% endblock -%}

