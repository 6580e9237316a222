#!version:1.0.0.1

## Generated for {{ XX_mac }}; edit the templates, not this file.

{% block settings -%}
security.user_name.admin = admin
security.user_password = admin:{{ XX_admin_password }}
local_time.ntp_server1 = {{ XX_ntp_ip }}
lang.gui = {{ XX_lang }}
features.dnd.on_code = {{ XX_dnd }}
{%- endblock %}

{% for line in XX_lines -%}
account.{{ line.no }}.enable = 1
account.{{ line.no }}.label = {{ line.label }}
account.{{ line.no }}.display_name = {{ line.display_name }}
account.{{ line.no }}.auth_name = {{ line.auth_name }}
account.{{ line.no }}.user_name = {{ line.user_name }}
account.{{ line.no }}.password = {{ line.password }}
account.{{ line.no }}.sip_server.1.address = {{ line.server }}
{% if line.port -%}
account.{{ line.no }}.sip_server.1.port = {{ line.port }}
{% endif -%}
account.{{ line.no }}.outbound_proxy_enable = 1
account.{{ line.no }}.outbound_host = {{ line.outbound_proxy }}
{% if line.port -%}
account.{{ line.no }}.outbound_port = {{ line.port }}
{% endif -%}
voice_mail.number.{{ line.no }} = {{ line.voicemail }}

{% endfor -%}
{% block funckeys -%}
{{ XX_fkeys }}
{%- endblock %}
