from django.db.models import Q


def navigation(request):
    membership = getattr(request, "membership", None)
    ctx = {"membership": membership, "is_tenant_admin": bool(membership and membership.is_admin)}
    user = getattr(request, "user", None)
    if membership is not None and user is not None and user.is_authenticated:
        from .models import Notification

        ctx["unread_notifications"] = Notification.objects.filter(Q(user=user) & Q(read_at__isnull=True)).count()
    return ctx
