"""Write notifyd/i18n/<lang>.po from the table below (the maintainers' source of the translations).

Run ``python tools/catalogues.py`` after adding a string; tests/selfservice/test_i18n.py fails
when a template or route uses a string that a catalogue lacks.
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import write_po

OUT = Path(__file__).resolve().parents[1] / "notifyd" / "i18n"

# msgid: (de, fr, es, ja)
T: dict[str, tuple[str, str, str, str]] = {
    "Subscribe": ("Abonnieren", "S'abonner", "Suscribirse", "購読する"),
    "Follow this incident": ("Diesem Vorfall folgen", "Suivre cet incident", "Seguir este incidente", "このインシデントをフォロー"),
    "Subscribe to status updates": ("Statusmeldungen abonnieren", "S'abonner aux mises à jour", "Suscribirse a las actualizaciones", "ステータス更新を購読"),
    "You will receive updates about this incident until it is resolved.": (
        "Sie erhalten Meldungen zu diesem Vorfall, bis er behoben ist.",
        "Vous recevrez les mises à jour de cet incident jusqu'à sa résolution.",
        "Recibirá actualizaciones de este incidente hasta que se resuelva.",
        "このインシデントが解決するまで更新を受け取ります。",
    ),
    "How should we reach you?": ("Wie sollen wir Sie erreichen?", "Comment vous joindre ?", "¿Cómo le contactamos?", "連絡方法"),
    "Address": ("Adresse", "Adresse", "Dirección", "宛先"),
    "An email address, a phone number such as +14155550100, or a URL.": (
        "Eine E-Mail-Adresse, eine Telefonnummer wie +14155550100 oder eine URL.",
        "Une adresse e-mail, un numéro de téléphone comme +14155550100, ou une URL.",
        "Un correo electrónico, un teléfono como +14155550100 o una URL.",
        "メールアドレス、+14155550100 のような電話番号、または URL。",
    ),
    "Components": ("Komponenten", "Composants", "Componentes", "コンポーネント"),
    "Choose none to hear about everything.": (
        "Wählen Sie keine, um über alles informiert zu werden.",
        "N'en choisissez aucun pour tout recevoir.",
        "No elija ninguno para recibirlo todo.",
        "すべて受け取るには何も選ばないでください。",
    ),
    "Language": ("Sprache", "Langue", "Idioma", "言語"),
    "Verification": ("Überprüfung", "Vérification", "Verificación", "確認"),
    "Manage your subscription": ("Abonnement verwalten", "Gérer votre abonnement", "Gestionar su suscripción", "購読の管理"),
    "Notifications to": ("Benachrichtigungen an", "Notifications vers", "Notificaciones a", "通知先"),
    "Your preferences are saved.": ("Ihre Einstellungen sind gespeichert.", "Vos préférences sont enregistrées.", "Sus preferencias se han guardado.", "設定を保存しました。"),
    "You are unsubscribed and receive nothing.": (
        "Sie sind abgemeldet und erhalten nichts.",
        "Vous êtes désabonné et ne recevez rien.",
        "Se ha dado de baja y no recibe nada.",
        "購読を解除しました。通知は届きません。",
    ),
    "What to hear about": ("Worüber informiert werden", "Ce que vous recevez", "Qué recibir", "受け取る内容"),
    "Minimum impact": ("Mindestauswirkung", "Impact minimum", "Impacto mínimo", "最小の影響度"),
    "Quiet hours": ("Ruhezeiten", "Heures calmes", "Horas de silencio", "通知停止時間"),
    "Hold notifications during quiet hours": (
        "Benachrichtigungen während der Ruhezeiten zurückhalten",
        "Retenir les notifications pendant les heures calmes",
        "Retener las notificaciones en las horas de silencio",
        "通知停止時間中は通知を保留する",
    ),
    "From": ("Von", "De", "Desde", "開始"),
    "Until": ("Bis", "À", "Hasta", "終了"),
    "Time zone": ("Zeitzone", "Fuseau horaire", "Zona horaria", "タイムゾーン"),
    "Critical updates still come through": (
        "Kritische Meldungen kommen trotzdem an",
        "Les mises à jour critiques passent quand même",
        "Las actualizaciones críticas llegan igualmente",
        "重大な更新は届きます",
    ),
    "Save preferences": ("Einstellungen speichern", "Enregistrer les préférences", "Guardar preferencias", "設定を保存"),
    "Unsubscribe from everything": ("Von allem abmelden", "Se désabonner de tout", "Darse de baja de todo", "すべての購読を解除"),
    "If the address can receive messages, a confirmation is on its way. Nothing will be sent until it is confirmed.": (
        "Wenn die Adresse Nachrichten empfangen kann, ist eine Bestätigung unterwegs. Bis zur Bestätigung wird nichts gesendet.",
        "Si l'adresse peut recevoir des messages, une confirmation est en route. Rien ne sera envoyé avant la confirmation.",
        "Si la dirección puede recibir mensajes, le llegará una confirmación. No se enviará nada hasta confirmarla.",
        "この宛先が受信可能であれば、確認メッセージが届きます。確認されるまで何も送信されません。",
    ),
    "Check your inbox": ("Sehen Sie in Ihren Posteingang", "Consultez votre boîte de réception", "Revise su bandeja de entrada", "受信箱を確認してください"),
    "Confirm your subscription": ("Abonnement bestätigen", "Confirmez votre abonnement", "Confirme su suscripción", "購読を確認してください"),
    "Press the button to start receiving status updates.": (
        "Drücken Sie die Schaltfläche, um Statusmeldungen zu erhalten.",
        "Appuyez sur le bouton pour recevoir les mises à jour.",
        "Pulse el botón para empezar a recibir actualizaciones.",
        "ボタンを押すとステータス更新の受信が始まります。",
    ),
    "Confirm": ("Bestätigen", "Confirmer", "Confirmar", "確認する"),
    "Subscribed": ("Abonniert", "Abonné", "Suscrito", "購読しました"),
    "You will now receive status updates.": (
        "Sie erhalten jetzt Statusmeldungen.",
        "Vous recevrez désormais les mises à jour.",
        "Ahora recibirá actualizaciones de estado.",
        "これからステータス更新が届きます。",
    ),
    "Subscribed. Reply STOP to unsubscribe.": (
        "Abonniert. Antworten Sie STOP zum Abmelden.",
        "Abonné. Répondez STOP pour vous désabonner.",
        "Suscrito. Responda STOP para darse de baja.",
        "購読しました。解除するには STOP と返信してください。",
    ),
    "Unsubscribed": ("Abgemeldet", "Désabonné", "Baja confirmada", "購読解除"),
    "You will receive no more notifications from this page.": (
        "Sie erhalten keine Benachrichtigungen mehr von dieser Seite.",
        "Vous ne recevrez plus de notifications de cette page.",
        "No recibirá más notificaciones de esta página.",
        "このページからの通知は届かなくなります。",
    ),
    "Incidents": ("Vorfälle", "Incidents", "Incidentes", "インシデント"),
    "Maintenance": ("Wartung", "Maintenance", "Mantenimiento", "メンテナンス"),
    "Component changes": ("Komponentenänderungen", "Changements de composants", "Cambios de componentes", "コンポーネントの変更"),
    "Everything": ("Alles", "Tout", "Todo", "すべて"),
    "Minor and above": ("Gering und höher", "Mineur et plus", "Menor o superior", "軽微以上"),
    "Major and above": ("Schwer und höher", "Majeur et plus", "Grave o superior", "重大以上"),
    "Critical only": ("Nur kritisch", "Critique uniquement", "Solo crítico", "緊急のみ"),
    "too many sign-ups from this address; try again later": (
        "Zu viele Anmeldungen von dieser Adresse; versuchen Sie es später erneut",
        "Trop d'inscriptions depuis cette adresse ; réessayez plus tard",
        "Demasiadas suscripciones desde esta dirección; inténtelo más tarde",
        "このアドレスからの登録が多すぎます。後でもう一度お試しください",
    ),
    "the CAPTCHA was not solved": ("Das CAPTCHA wurde nicht gelöst", "Le CAPTCHA n'a pas été résolu", "No se resolvió el CAPTCHA", "CAPTCHA が解決されていません"),
    # notifications
    "Status": ("Status", "Statut", "Estado", "ステータス"),
    "Impact": ("Auswirkung", "Impact", "Impacto", "影響度"),
    "Affected components": ("Betroffene Komponenten", "Composants touchés", "Componentes afectados", "影響を受けるコンポーネント"),
    "Status page": ("Statusseite", "Page de statut", "Página de estado", "ステータスページ"),
    "Manage subscription": ("Abonnement verwalten", "Gérer l'abonnement", "Gestionar suscripción", "購読の管理"),
    "Manage": ("Verwalten", "Gérer", "Gestionar", "管理"),
    "Unsubscribe": ("Abmelden", "Se désabonner", "Darse de baja", "購読解除"),
    "investigating": ("Untersuchung läuft", "en cours d'analyse", "investigando", "調査中"),
    "identified": ("Ursache gefunden", "identifié", "identificado", "原因特定"),
    "monitoring": ("Beobachtung", "surveillance", "en observación", "監視中"),
    "resolved": ("behoben", "résolu", "resuelto", "解決済み"),
    "postmortem": ("Nachbetrachtung", "post-mortem", "análisis posterior", "事後分析"),
    "operational": ("betriebsbereit", "opérationnel", "operativo", "正常"),
    "degraded performance": ("eingeschränkte Leistung", "performances dégradées", "rendimiento degradado", "パフォーマンス低下"),
    "partial outage": ("Teilausfall", "panne partielle", "interrupción parcial", "部分的な障害"),
    "major outage": ("schwerer Ausfall", "panne majeure", "interrupción grave", "重大な障害"),
    "under maintenance": ("in Wartung", "en maintenance", "en mantenimiento", "メンテナンス中"),
    "none": ("keine", "aucun", "ninguno", "なし"),
    "minor": ("gering", "mineur", "menor", "軽微"),
    "major": ("schwer", "majeur", "grave", "重大"),
    "critical": ("kritisch", "critique", "crítico", "緊急"),
    # confirmations
    "Confirm your subscription to %(page)s status updates": (
        "Bestätigen Sie Ihr Abonnement der Statusmeldungen von %(page)s",
        "Confirmez votre abonnement aux mises à jour de %(page)s",
        "Confirme su suscripción a las actualizaciones de %(page)s",
        "%(page)s のステータス更新の購読を確認してください",
    ),
    "Someone, hopefully you, asked to receive status updates from %(page)s at this address.": (
        "Jemand, hoffentlich Sie, möchte an dieser Adresse Statusmeldungen von %(page)s erhalten.",
        "Quelqu'un, sans doute vous, a demandé à recevoir les mises à jour de %(page)s à cette adresse.",
        "Alguien, esperamos que usted, pidió recibir actualizaciones de %(page)s en esta dirección.",
        "どなたか(おそらくあなた)が、この宛先で %(page)s のステータス更新を受け取るよう申し込みました。",
    ),
    "If it was not you, ignore this message: nothing will be sent.": (
        "Wenn Sie das nicht waren, ignorieren Sie diese Nachricht: Es wird nichts gesendet.",
        "Si ce n'était pas vous, ignorez ce message : rien ne sera envoyé.",
        "Si no fue usted, ignore este mensaje: no se enviará nada.",
        "お心当たりがなければ、このメッセージは無視してください。何も送信されません。",
    ),
    "%(page)s: reply YES to receive status updates. Ignore this to receive nothing.": (
        "%(page)s: Antworten Sie YES, um Statusmeldungen zu erhalten. Ignorieren Sie dies, um nichts zu erhalten.",
        "%(page)s : répondez YES pour recevoir les mises à jour. Ignorez ce message pour ne rien recevoir.",
        "%(page)s: responda YES para recibir actualizaciones. Ignore esto para no recibir nada.",
        "%(page)s: ステータス更新を受け取るには YES と返信してください。不要なら無視してください。",
    ),
}

LANGS = ("de", "fr", "es", "ja")


def main() -> None:
    for i, lang in enumerate(LANGS):
        catalog = Catalog(locale=lang, project="notifyd", version="1", charset="utf-8")
        for msgid, translations in T.items():
            catalog.add(msgid, translations[i])
        with (OUT / f"{lang}.po").open("wb") as fh:
            write_po(fh, catalog, omit_header=False, width=0)


if __name__ == "__main__":
    main()
