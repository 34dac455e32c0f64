# Production-like image: gunicorn for the web, the same image runs Celery worker and beat.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY . .
RUN pip install --no-cache-dir . \
 && python manage.py collectstatic --noinput -v 0 \
 && useradd --system --uid 1000 psa && chown -R psa /app
USER psa

EXPOSE 8000
# gunicorn.conf.py: gthread workers, timeouts, request limits (README, "Production"); put the
# buffering proxy (deploy/nginx) in front.
CMD ["gunicorn", "-c", "gunicorn.conf.py", "psa.wsgi:application"]
