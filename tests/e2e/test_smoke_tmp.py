from playwright.sync_api import expect

def test_smoke(jupyter, ui):
    nb = jupyter.open(ui, [
        "import ipybridge\nb = ipybridge.Bridge(html='<div id=out>waiting</div>', js='''\nel.querySelector('#out').textContent = String(await py.add(1, 2));\n''')\n@b.expose\ndef add(a, b):\n    return a + b\nb",
    ])
    nb.run_all()
    expect(nb.page.locator("#out")).to_have_text("3")
