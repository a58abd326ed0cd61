"""The demo: three business apps (ERP, CRM, inventory) that sign in through the provider."""
