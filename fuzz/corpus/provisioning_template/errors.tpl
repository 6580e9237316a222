{% if %}
{{ 1 / 0 }}{{ x|nofilter }}{% include 'missing.tpl' %}