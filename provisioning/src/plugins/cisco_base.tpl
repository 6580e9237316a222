<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<!-- Generated for {{ XX_mac }}; edit the templates, not this file. -->
<flat-profile>
{% block settings -%}
<Admin_Passwd>{{ XX_admin_password|e }}</Admin_Passwd>
{% if XX_ntp_ip -%}
<Primary_NTP_Server>{{ XX_ntp_ip|e }}</Primary_NTP_Server>
{% endif -%}
{% if XX_timezone -%}
{{ XX_timezone }}
{% endif -%}
{% if XX_language -%}
<Language_Selection>{{ XX_language }}</Language_Selection>
{% endif -%}
{% if XX_vlan_enabled -%}
<Enable_VLAN>Yes</Enable_VLAN>
<VLAN_ID>{{ XX_vlan_id }}</VLAN_ID>
{% endif -%}
{% if XX_syslog_enabled -%}
<Syslog_Server>{{ XX_syslog_ip|e }}:{{ XX_syslog_port }}</Syslog_Server>
{% endif -%}
{% if exten_voicemail -%}
<Voice_Mail_Number>{{ exten_voicemail|e }}</Voice_Mail_Number>
{% endif -%}
{% if exten_pickup_call -%}
<Call_Pickup_Code>{{ exten_pickup_call|e }}</Call_Pickup_Code>
{% endif -%}
{% if exten_dnd -%}
<DND_Act_Code>{{ exten_dnd|e }}</DND_Act_Code>
<DND_Deact_Code>{{ exten_dnd|e }}</DND_Deact_Code>
{% endif -%}
{% if exten_fwd_unconditional -%}
<Cfwd_All_Act_Code>{{ exten_fwd_unconditional|e }}</Cfwd_All_Act_Code>
{% endif -%}
{% if exten_fwd_busy -%}
<Cfwd_Busy_Act_Code>{{ exten_fwd_busy|e }}</Cfwd_Busy_Act_Code>
{% endif -%}
{% if exten_fwd_no_answer -%}
<Cfwd_No_Ans_Act_Code>{{ exten_fwd_no_answer|e }}</Cfwd_No_Ans_Act_Code>
{% endif -%}
{% if exten_fwd_disable_all -%}
<Cfwd_All_Deact_Code>{{ exten_fwd_disable_all|e }}</Cfwd_All_Deact_Code>
{% endif -%}
{% if XX_phonebook_url -%}
<XML_Directory_Service_Name>{{ XX_directory_name }}</XML_Directory_Service_Name>
<XML_Directory_Service_URL>{{ XX_phonebook_url|e }}</XML_Directory_Service_URL>
{% endif -%}
{% endblock -%}
{% for line in XX_lines -%}
<Line_Enable_{{ line.no }}_>Yes</Line_Enable_{{ line.no }}_>
<Display_Name_{{ line.no }}_>{{ line.display_name|e }}</Display_Name_{{ line.no }}_>
<User_ID_{{ line.no }}_>{{ line.username|e }}</User_ID_{{ line.no }}_>
<Use_Auth_ID_{{ line.no }}_>Yes</Use_Auth_ID_{{ line.no }}_>
<Auth_ID_{{ line.no }}_>{{ line.auth_username|e }}</Auth_ID_{{ line.no }}_>
<Password_{{ line.no }}_>{{ line.password|e }}</Password_{{ line.no }}_>
<Proxy_{{ line.no }}_>{{ line.registrar_ip|e }}</Proxy_{{ line.no }}_>
<Use_Outbound_Proxy_{{ line.no }}_>Yes</Use_Outbound_Proxy_{{ line.no }}_>
<Outbound_Proxy_{{ line.no }}_>{{ line.proxy_ip|e }}</Outbound_Proxy_{{ line.no }}_>
<Mailbox_ID_{{ line.no }}_>{{ line.voicemail|e }}</Mailbox_ID_{{ line.no }}_>
<Extension_{{ line.no }}_>{{ line.no }}</Extension_{{ line.no }}_>
<Short_Name_{{ line.no }}_>{{ line.number|e }}</Short_Name_{{ line.no }}_>
{% endfor -%}
{% block funckeys -%}
{% if XX_fkeys -%}
{{ XX_fkeys }}
{% endif -%}
{% endblock -%}
</flat-profile>

