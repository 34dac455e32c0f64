import os

from django.core.wsgi import get_wsgi_application

from psa.wsgi_input import TerminatedInput

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "psa.settings")
# Chunked request bodies are read here (sized, limit enforced) before Django sees them.
application = TerminatedInput(get_wsgi_application())
