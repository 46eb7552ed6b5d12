import secrets

from django.contrib.auth import get_user_model

from tracker.management.base import TrackerCommand


class Command(TrackerCommand):
    help = "Create a staff login with a random password, printed once (no-op if it exists)."

    def add_arguments(self, parser):
        parser.add_argument(
            "username", nargs="?", default="demo", help="the login to create (default: demo)"
        )

    def handle(self, *args, username: str, **options):
        users = get_user_model()
        if users.objects.filter(username=username).exists():
            self.stdout.write(
                f"login: user {username!r} exists; its password was printed when it was "
                f"created (change it with: python manage.py changepassword {username})"
            )
            return
        password = secrets.token_urlsafe(12)
        users.objects.create_superuser(username=username, email="", password=password)
        self.stdout.write(f"login: user {username!r} password {password!r} (shown only now)")
