// Every figure of a notebook's output opens at full size when clicked: the page shows it at the width its fonts
// were set for (report.Sources.figure), the file holds twice the pixels. Jupyter Book loads every .js of _static.
document.addEventListener("DOMContentLoaded", () => {
  for (const img of document.querySelectorAll(".cell_output img, .output img")) {
    if (img.closest("a")) continue;
    const link = document.createElement("a");
    link.href = img.src;
    link.target = "_blank";
    link.title = "open the figure at full size";
    link.className = "zeroflow-full-size";
    img.replaceWith(link);
    link.appendChild(img);
  }
});
