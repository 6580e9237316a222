{{ 'é'|e }}{{ none }}{{ true }}{% raw %}{{ raw }}{% endraw %}{#
 comment #}

